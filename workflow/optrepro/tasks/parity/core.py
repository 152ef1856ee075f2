"""The names of the original sparse-parity module (docs/tasks/parity.md).

Strategy files run among these names (`NAMES`, an explicit list; the driver
adds its entry points), each with its original behaviour: the config
dataclasses, the model, seeding, secrets, labels, test sets, validation and
`train_one_run`, the plain one-run-at-a-time loop of the original driver.
The fast path (`batched.py`) trains many runs at once and is checked against
`train_one_run`.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from ...device import resolve_device
from .config import DEFAULT_TASK, OptimizerConfig, RunResult, TaskConfig, maybe_apply_smoke_mode


def build_model(config: TaskConfig) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(config.n_features, config.hidden_width),
        nn.ReLU(),
        nn.Linear(config.hidden_width, 1),
        nn.Sigmoid(),
    )


def set_global_seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def sample_hidden_secrets(config: TaskConfig, seed: int) -> list[tuple[int, ...]]:
    """Distinct sorted K-subsets of range(N), in acceptance order, from random.Random(seed + 17)."""
    if config.num_hidden_secrets > math.comb(config.n_features, config.secret_size):
        raise ValueError("num_hidden_secrets exceeds the number of distinct secrets C(N, K).")
    rng = random.Random(seed + 17)
    secrets: list[tuple[int, ...]] = []
    while len(secrets) < config.num_hidden_secrets:
        secret = tuple(sorted(int(v) for v in rng.sample(range(config.n_features), config.secret_size)))
        if secret not in secrets:
            secrets.append(secret)
    return secrets


def parity_labels(x: torch.Tensor, secret: tuple[int, ...]) -> torch.Tensor:
    index = torch.tensor(secret, dtype=torch.long)
    return (x.index_select(1, index).sum(dim=1) % 2).to(torch.float32)


def make_test_set(config: TaskConfig, secret: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 2, (config.test_set_size, config.n_features), generator=generator,
                      dtype=torch.int64).to(torch.float32)
    return x, parity_labels(x, secret)


def all_binary(x: torch.Tensor) -> bool:
    """Whether every value of `x` is 0 or 1; one min/max pass for integers (a third of the comparisons' time)."""
    if x.dtype == torch.bool or x.numel() == 0:
        return True
    if x.is_floating_point():
        return bool(((x == 0) | (x == 1)).all())
    low, high = torch.aminmax(x)
    return bool(low >= 0) and bool(high <= 1)


def dataset_parts(dataset) -> tuple[object, object]:
    """(x, y) of a `make_dataset` result, a pair or a dict with 'x' and 'y', as the original accepts."""
    if isinstance(dataset, dict):
        if "x" not in dataset or "y" not in dataset:
            raise ValueError("Dataset dict must contain 'x' and 'y'.")
        return dataset["x"], dataset["y"]
    if isinstance(dataset, (tuple, list)):
        if len(dataset) != 2:
            raise ValueError(f"Dataset tuple must have exactly 2 elements (x, y), got {len(dataset)}.")
        return dataset[0], dataset[1]
    raise TypeError(f"make_dataset must return (x, y) or a dict with 'x' and 'y', got {type(dataset).__name__}.")


def check_dataset(shape: tuple[int, ...], inputs_binary: Callable[[], bool], y: torch.Tensor,
                  config: TaskConfig) -> None:
    """The original's checks of inputs of `shape` and float32 labels `y`, in its order; `inputs_binary()` says
    whether every input is 0 or 1 (asked only once the shapes pass, where the original looks at the values)."""
    if len(shape) != 2:
        raise ValueError(f"Training inputs must be 2-D, got shape {shape}.")
    if shape[1] != config.n_features:
        raise ValueError(f"Training inputs must have {config.n_features} columns, got {shape[1]}.")
    if shape[0] != y.shape[0]:
        raise ValueError(f"Training inputs and labels disagree on size: {shape[0]} vs {y.shape[0]}.")
    if shape[0] < 1:
        raise ValueError("Training dataset must contain at least one example.")
    if shape[0] > config.max_train_examples:
        raise ValueError(f"Training dataset size {shape[0]} exceeds limit {config.max_train_examples}.")
    if not inputs_binary():
        raise ValueError("Training inputs must stay in {0, 1}.")
    if not all_binary(y):
        raise ValueError("Training labels must stay in {0, 1}.")


def normalize_dataset(dataset, config: TaskConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The original's checks of a `make_dataset` result, in its order."""
    x, y = dataset_parts(dataset)
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.float32).reshape(-1)
    check_dataset(tuple(x.shape), lambda: all_binary(x), y, config)
    return x.contiguous(), y.contiguous()


def normalize_optimizer_config(raw) -> OptimizerConfig:
    """The original's checks of `get_optimizer_config`; NaN fails every check."""
    missing = sorted(key for key in ("lr", "wd", "beta1", "beta2") if key not in raw)
    if missing:
        raise ValueError(f"Optimizer config is missing keys: {missing}")
    config = OptimizerConfig(**{key: float(raw[key]) for key in ("lr", "wd", "beta1", "beta2")})
    if not config.lr > 0:
        raise ValueError(f"lr must be > 0, got {config.lr}.")
    if not config.wd >= 0:
        raise ValueError(f"wd must be >= 0, got {config.wd}.")
    if not 0 < config.beta1 < 1:
        raise ValueError(f"beta1 must be in (0, 1), got {config.beta1}.")
    if not 0 < config.beta2 < 1:
        raise ValueError(f"beta2 must be in (0, 1), got {config.beta2}.")
    return config


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                      chunk: int = 4096) -> float:
    model.eval()
    correct = 0
    for start in range(0, x.shape[0], chunk):
        xb = x[start:start + chunk].to(device)
        yb = y[start:start + chunk].to(device)
        correct += int(((model(xb).reshape(-1) >= 0.5) == (yb >= 0.5)).sum())
    return correct / x.shape[0]


def is_log_step(step: int, config: TaskConfig) -> bool:
    return step == 1 or step % config.log_interval == 0 or step == config.max_steps


def maybe_log_final_window(log: Callable[[int, float, float], None], step: int, last_logged: int,
                           loss_sum: float, acc_sum: float, count: int) -> None:
    """The original's extra line for a non-empty window left open at the end of a run.

    Every stop falls on a log event (max_steps is one), so under this driver it never fires;
    it is kept because strategy files may name it.
    """
    if step != last_logged and count > 0:
        log(step, loss_sum / count, acc_sum / count)


def train_one_run(model: nn.Sequential, optimizer_config: OptimizerConfig, x: torch.Tensor, y: torch.Tensor,
                  test_x: torch.Tensor, test_y: torch.Tensor, config: TaskConfig, order_seed: int,
                  device: torch.device, log: Callable[[int, float, float], None]) -> tuple[int, float]:
    """One run exactly as the original loop did it; returns (steps, test_accuracy).

    `log(step, avg_loss, avg_acc)` receives every TRAIN_METRICS window.
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=optimizer_config.lr,
                                  betas=(optimizer_config.beta1, optimizer_config.beta2),
                                  weight_decay=optimizer_config.wd, foreach=False)
    loss_fn = nn.BCELoss()
    order = torch.Generator().manual_seed(order_seed)
    n = x.shape[0]
    step = last_logged = stable = count = 0
    loss_sum = acc_sum = 0.0
    done = False
    model.train()
    while not done:
        permutation = torch.randperm(n, generator=order)
        for start in range(0, n, config.batch_size):
            index = permutation[start:start + config.batch_size]
            xb, yb = x[index].to(device), y[index].to(device)
            optimizer.zero_grad(set_to_none=True)
            prob = model(xb).reshape(-1)
            loss = loss_fn(prob, yb)
            loss.backward()
            optimizer.step()
            step += 1
            loss_sum += float(loss.item())
            acc_sum += float(((prob.detach() >= 0.5) == (yb >= 0.5)).float().mean().item())
            count += 1
            if is_log_step(step, config):
                log(step, loss_sum / count, acc_sum / count)
                last_logged = step
                qualifies = step >= config.min_steps_before_stop and acc_sum / count >= config.early_stop_acc
                stable = stable + 1 if qualifies else 0
                loss_sum = acc_sum = 0.0
                count = 0
            if step >= config.max_steps or stable >= config.early_stop_windows:
                done = True
                break
    maybe_log_final_window(log, step, last_logged, loss_sum, acc_sum, count)
    return step, evaluate_accuracy(model, test_x, test_y, device)


# What the original module offered its editable region, except the entry points the driver adds
# (`run_benchmark`, `parse_args`, `main`).
NAMES = {
    "argparse": argparse, "json": json, "math": math, "random": random, "Path": Path,
    "asdict": asdict, "dataclass": dataclass, "replace": replace, "torch": torch, "nn": nn,
    "TaskConfig": TaskConfig, "OptimizerConfig": OptimizerConfig, "RunResult": RunResult,
    "DEFAULT_TASK": DEFAULT_TASK, "build_model": build_model, "set_global_seed": set_global_seed,
    "sample_hidden_secrets": sample_hidden_secrets, "parity_labels": parity_labels,
    "make_test_set": make_test_set, "normalize_dataset": normalize_dataset,
    "normalize_optimizer_config": normalize_optimizer_config, "evaluate_accuracy": evaluate_accuracy,
    "maybe_log_final_window": maybe_log_final_window, "train_one_run": train_one_run,
    "resolve_device": resolve_device, "maybe_apply_smoke_mode": maybe_apply_smoke_mode,
}
