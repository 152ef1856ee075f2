"""The DP-SGD driver: `python -m optrepro.tasks.dpsgd --benchmark mnist --strategy FILE --seed 42`.

It prints the original's lines in its order, preceded by a
TASK_CONFIG line and followed by one FINAL_METRICS line (the runner's
final metrics), and under `mlsbench` draws every random number the original
draws, in the same order, from the same generators (under `corrected` the
batches are Poisson ones instead, from a generator of their own seeded with
the run's seed: `epoch_batches`). What differs is speed: the data
lives on the device and per-example gradients come from one vectorised pass
per batch (vectorised.py). The protocol decides the accounting (accounting.py):
`mlsbench` calibrates σ and reports ε with the benchmark's formula,
`corrected` with an Opacus accountant over the noise actually added (an
epoch the privacy audit, audit.py, finds under-noised is accounted with the
measured σ̂), fails a run whose spend would exceed the target, and makes the
final test accuracy the score (the original's best_accuracy is picked on the
test set). Every run also reports `epsilon_rdp` (Opacus RDP over the σ
accounted), the audit's verdict and `private`: whether the run may be ranked
as private at its target (`is_private`). The command line and its errors are the shared
skeleton's (`optrepro.tasks.cli`).
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...data.manifest import root_from_environment
from ...metrics import emit, format_calibration, format_epoch, format_final_results, format_model
from ...strategy import StrategyError, call_strategy
from .. import cli
from .accounting import BENCHMARK, PrivacyLedger, calibrate_sigma
from .audit import audit_step, verdict
from .config import FOUR_DECIMALS, DPSGDConfig, TaskConfigError
from .core import MODELS, NAMES
from .vectorised import epoch_order, evaluate, load_split, per_sample_gradients, poisson_batches

LOG_EVERY = 50  # batches between TRAIN_METRICS lines


def set_global_seed(seed: int) -> None:
    """The torch CPU generator, numpy and every CUDA generator."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.cuda.manual_seed_all(seed)


def load_data(config: DPSGDConfig, root: str | Path, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(train x, train y, test x, test y) of the config's dataset under `root`, on the device."""
    folder = Path(root) / config.dataset
    train = load_split(config.dataset, folder, True, config.max_train_examples)
    test = load_split(config.dataset, folder, False, config.max_test_examples)
    return tuple(t.to(device) for t in (*train, *test))


def install_gradients(path: str, model: torch.nn.Module, noised) -> None:
    """Make `noised[j]` the gradient of parameter j (positional; missing ones stay None, extras are ignored), on
    the parameter's device (the mechanism's process returns tensors on the CPU)."""
    if not isinstance(noised, (list, tuple)):
        raise StrategyError(path, f"clip_and_noise must return a list of tensors, got {type(noised).__name__}")
    for j, (p, g) in enumerate(zip(model.parameters(), noised)):
        if not isinstance(g, torch.Tensor) or g.shape != p.shape or g.dtype != p.dtype:
            got = f"{g.dtype} {tuple(g.shape)}" if isinstance(g, torch.Tensor) else type(g).__name__
            raise StrategyError(path, f"clip_and_noise returned {got} for parameter {j}; expected "
                                      f"{p.dtype} {tuple(p.shape)}")
        p.grad = g.to(p.device)


def private_step(path: str, mechanism, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 grads: list[torch.Tensor], step: int, epoch: int, rescale: float) -> None:
    """One private step: the mechanism privatises the per-example gradients, the optimiser takes its step on
    them times `rescale` (1 for fixed-size batches; b / E[b] for Poisson ones, see `train_epoch`)."""
    noised = call_strategy(path, "clip_and_noise", mechanism.clip_and_noise, grads, step, epoch)
    optimizer.zero_grad()
    install_gradients(path, model, noised)
    if rescale != 1.0:
        for p in model.parameters():
            p.grad = p.grad * rescale
    optimizer.step()


def reported_sigma(path: str, value) -> float:
    try:
        sigma = float(value)
    except (TypeError, ValueError):
        sigma = math.nan
    if not (math.isfinite(sigma) and sigma > 0):
        raise StrategyError(path, f"get_effective_sigma must return a positive number, got {value!r}")
    return sigma


def epoch_batches(config: DPSGDConfig, n: int, sampler: torch.Generator):
    """This epoch's batches of row indices: the original's shuffled fixed-size ones under `mlsbench`, Poisson
    ones (`poisson_batches`, as many as a fixed-size epoch has) under a standard accountant, which assumes them."""
    steps = n // config.batch_size
    if config.accountant != BENCHMARK:
        return poisson_batches(n, config.batch_size / n, steps, sampler)
    order = epoch_order(n)
    return (order[index * config.batch_size:(index + 1) * config.batch_size] for index in range(steps))


def train_epoch(path: str, mechanism, model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                y: torch.Tensor, config: DPSGDConfig, epoch: int, step: int, audits: list,
                audit_rng: random.Random, sampler: torch.Generator) -> tuple[int, float, float]:
    """One training epoch, auditing one batch drawn from the private `audit_rng` (and, in epoch 1, the first one)
    into `audits`; (global step after it, train loss, train acc %).

    The first step is audited too because an adaptive threshold (adaptive_clipping, ema_centered_adaptive_clip)
    can settle at its clamp within epoch 1, after which one example no longer moves it: its data-dependent noise
    shows only in the steps before.

    A Poisson batch of b rows goes to the mechanism as it comes; since a mechanism divides by the batch it gets,
    its output is rescaled by b / E[b] (E[b] = batch_size), which makes the update Opacus's for Poisson batches
    (sum of clipped gradients plus noise, over the expected batch size). An empty batch releases nothing: the
    mechanism is not called (the shipped ones divide by the batch size), the model does not move, and the step
    still counts for the accountant. The audit takes the first non-empty batch from its drawn index on.
    """
    model.train()
    batch, steps = config.batch_size, x.shape[0] // config.batch_size
    pending = sorted({audit_rng.randrange(steps)} | ({0} if epoch == 1 else set()), reverse=True) \
        if config.audit else []  # indices to audit from, the next last; the epoch's drawn one audited last
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    seen = 0
    for index, rows in enumerate(epoch_batches(config, x.shape[0], sampler)):
        rows = rows.to(x.device)
        size = rows.shape[0]
        if size:
            xb, yb = x[rows], y[rows]
            grads = per_sample_gradients(model, xb, yb)
            if pending and index >= pending[-1]:
                pending.pop()
                audits.append(audit_step(mechanism, grads, step, epoch, config.max_grad_norm, audit_rng, x.device))
            private_step(path, mechanism, model, optimizer, grads, step, epoch, size / batch)
            with torch.no_grad():  # step 4: running loss and accuracy of the updated model on this batch
                logits = model(xb)
                loss_sum += F.cross_entropy(logits, yb).double() * size
                correct += (logits.argmax(dim=1) == yb).sum()
        seen += size
        step += 1
        if (index + 1) % LOG_EVERY == 0:
            emit("TRAIN_METRICS", {"epoch": epoch, "step": step, "loss": loss_sum.item() / max(seen, 1),
                                   "accuracy": 100.0 * correct.item() / max(seen, 1)}, decimals={"accuracy": 2})
    audits.extend([None] * len(pending))  # every batch from an index on was empty: nothing to audit there
    return step, loss_sum.item() / max(seen, 1), 100.0 * correct.item() / max(seen, 1)


def is_private(audit: str, protocol_accountant: str) -> bool:
    """Whether a run may be ranked as private at its target: never with noise that depends on the data or with a
    mechanism that could not be audited; under `mlsbench` (the benchmark's formula, which accounts the reported
    σ) not when the audit measured less noise than reported either. Under `corrected` an under-noised epoch
    was accounted with the measured σ̂, and a spend above the target has already failed the run."""
    if audit in ("data-dependent", "not-audited"):
        return False
    return protocol_accountant != BENCHMARK or not audit.startswith("under-noised")


def privacy_terms(config: DPSGDConfig) -> dict[str, object]:
    """What an ε is a statement about: the accountant, the batches' sampling, the neighbouring relation, δ.
    Opacus's accountants (epsilon_rdp, and `epsilon` under `corrected`) assume Poisson sampling and add/remove
    neighbours; under `mlsbench` the batches are shuffled, so its epsilon_rdp is computed under an assumption
    the run does not satisfy, not a bound."""
    return {"accountant": config.accountant,
            "sampling": "shuffled" if config.accountant == BENCHMARK else "poisson",
            "neighbours": "add-remove", "target_delta": repr(config.target_delta)}


def run_benchmark(strategy, config: DPSGDConfig, seed: int, data: tuple[torch.Tensor, ...],
                  audit_rng: random.Random | None = None) -> dict[str, object]:
    """Train and account one run, printing every line; return the FINAL_METRICS fields.

    Seeding here rather than before loading the data draws the same numbers: loading draws none. The audit draws
    from `audit_rng`, by default seeded from the operating system, which the mechanism cannot see or predict.
    """
    audit_rng = audit_rng or random.Random(int.from_bytes(os.urandom(16), "big"))
    set_global_seed(seed)
    x_train, y_train, x_test, y_test = data
    n, batch = x_train.shape[0], config.batch_size
    steps_per_epoch = n // batch
    if steps_per_epoch == 0:
        raise TaskConfigError(f"batch_size {batch} exceeds the {n} training examples")
    total_steps, q = steps_per_epoch * config.epochs, batch / n
    emit("TASK_CONFIG", {**{k: repr(v) if isinstance(v, float) else v for k, v in asdict(config).items()},
                         "train_examples": n, "test_examples": x_test.shape[0]})
    sigma = calibrate_sigma(config.accountant, config.target_epsilon, config.target_delta, q, total_steps)
    print(format_calibration(sigma, config.target_epsilon, config.target_delta, total_steps, q), flush=True)
    model = MODELS[config.dataset]().to(x_train.device)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(format_model(type(model).__name__, n_params), flush=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=0)
    mechanism = call_strategy(strategy.path, "DPMechanism", strategy.DPMechanism, max_grad_norm=config.max_grad_norm,
                              noise_multiplier=sigma, n_params=n_params, dataset_size=n, batch_size=batch,
                              epochs=config.epochs, target_epsilon=config.target_epsilon,
                              target_delta=config.target_delta)
    ledger, audits = PrivacyLedger(q, config.target_delta), []
    sampler = torch.Generator().manual_seed(seed)  # Poisson batches: a stream of their own, fixed by the seed
    step, best = 0, 0.0
    for epoch in range(1, config.epochs + 1):
        step, train_loss, train_acc = train_epoch(strategy.path, mechanism, model, optimizer, x_train, y_train,
                                                  config, epoch, step, audits, audit_rng, sampler)
        test_loss, test_acc = evaluate(model, x_test, y_test)
        value = call_strategy(strategy.path, "get_effective_sigma", mechanism.get_effective_sigma, step, epoch)
        point = audits[-1] if config.audit else None  # this epoch's audit (None: the mechanism was not auditable)
        measured = point.sigma if point is not None and config.accountant != BENCHMARK else None
        ledger.report(step, reported_sigma(strategy.path, value), measured)
        print(format_epoch(epoch, config.epochs, train_loss, train_acc, test_loss, test_acc,
                           ledger.epsilon(config.accountant), ledger.reported), flush=True)
        best = max(best, test_acc)
        if config.accountant != BENCHMARK:
            ledger.check_budget(config.accountant, config.target_epsilon, total_steps, epoch, config.epochs)
        scheduler.step()
    _, accuracy = evaluate(model, x_test, y_test)
    epsilon = ledger.epsilon(config.accountant)
    print(flush=True)
    emit("TEST_METRICS", {"accuracy": accuracy, "epsilon": epsilon, "best_accuracy": best}, FOUR_DECIMALS)
    print(flush=True)
    print(format_final_results(accuracy, best, epsilon), flush=True)
    audit, audit_ratio = verdict(audits, ledger.claimed) if config.audit else ("off", math.nan)
    metrics = {"score": best if config.accountant == BENCHMARK else accuracy, "accuracy": accuracy,
               "best_accuracy": best, "epsilon": epsilon, "epsilon_rdp": ledger.epsilon("rdp"), "sigma": sigma,
               "sigma_reported": ledger.reported, "audit": audit, "audit_ratio": audit_ratio,
               "private": int(is_private(audit, config.accountant)), "target_epsilon": config.target_epsilon,
               **privacy_terms(config)}
    emit("FINAL_METRICS", metrics, FOUR_DECIMALS)
    return metrics


def run(strategy, config: DPSGDConfig, seed: int, device: torch.device) -> dict[str, object]:
    """Load the dataset from DATA_ROOT onto the device, then `run_benchmark`."""
    return run_benchmark(strategy, config, seed, load_data(config, root_from_environment(), device))


def strategy_namespace() -> dict[str, object]:
    """The original module's names (core.NAMES); the original offers no entry point to its editable block."""
    return dict(NAMES)


DRIVER = cli.Driver("dpsgd", strategy_namespace, run, separate_process=True, kept_results=("DPMechanism",))


def main(argv: list[str] | None = None) -> int:
    return cli.main(DRIVER, argv)
