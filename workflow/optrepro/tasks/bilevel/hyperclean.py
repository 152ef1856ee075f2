"""MNIST data hyper-cleaning (bilevel.md §6-§9): data, models, the four methods, evaluation and output.

* Data (§6): `load_hyperclean_splits` seeds Python's `random` and torch,
  shuffles the 60,000 MNIST training images with `random`, cuts training /
  validation / test, normalises each split by its own largest pixel value and
  pollutes the training labels exactly as the original (`HypercleanSplit.pollute`:
  ⌊ρ n⌋ examples marked dirty, each given `random.randint(0, |L \\ {label}|)`,
  which can return the true label).
* Methods (§8): `run_v_pbgd`, `run_g_pbgd`, `run_rhg_family` (rhg and t_rhg).
  The reverse-mode hypergradient of §8.5 is `reverse_hypergradient`, written
  from its mathematical description.
* Evaluation and selection (§7): `compute_accuracy`,
  `compute_cleaner_metrics`, `make_eval_record`, `update_best_by_accuracy`,
  `update_best_by_f1`, `summarize_hyperclean_metrics`; the `corrected`
  protocol adds `select_by_val_loss` and `corrected_extras`.
* Output (§9.2, §9.3): `emit_hyperclean_eval`, `emit_hyperclean_final`, via
  `optrepro.metrics.emit`.

Data and models live on the run's device. The host reads device values only
at evaluation points (every `eval_interval` steps for the PBGD methods, every
outer step for RHG, which evaluates every step): the loss values of a record
are kept as tensors until then, the penalty schedule is Python arithmetic.

Differences from the original that do not change any computed value: the RHG
forward unroll does not keep the autograd graph of its T steps (the original
keeps it but never uses it: the reverse routine detaches the history and
recomputes each map), so its memory does not grow with T; a regulariser with
`reg` = 0 is not computed (it adds exact zeros). Timing (`iter_time`) is taken
after a device synchronisation at evaluated steps, so it means what it says on
CUDA too.
"""

from __future__ import annotations

import copy
import os
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...metrics import emit
from .hyperclean_config import (DEFAULT_HYPERCLEAN, HYPERCLEAN_METHODS, NETS, PROTOCOLS, HypercleanConfig,
                                HypercleanEval, HypercleanStrategy)

TIE_TOL = 1e-12
AUX_NAMES = {"v_pbgd": "penalty_gap", "g_pbgd": "grad_penalty", "rhg": "inner_objective", "t_rhg": "inner_objective"}
FINAL_KEYS = (
    "test_accuracy", "f1_score", "cleaner_precision", "cleaner_recall", "best_step", "runtime_sec",
    "total_runtime_sec",
    "best_accuracy_test_accuracy", "best_accuracy_f1_score", "best_accuracy_cleaner_precision",
    "best_accuracy_cleaner_recall", "best_accuracy_step", "best_accuracy_runtime_sec",
    "best_f1_test_accuracy", "best_f1_f1_score", "best_f1_cleaner_precision", "best_f1_cleaner_recall",
    "best_f1_step", "best_f1_runtime_sec",
    "score",
)
# The `corrected` protocol's keys, appended after FINAL_KEYS: the evaluation with the lowest validation loss
# (of the iterate it evaluates) and the last evaluation. Neither is chosen with the test set.
_RECORD_KEYS = ("test_accuracy", "f1_score", "cleaner_precision", "cleaner_recall", "step", "val_loss",
                "runtime_sec")
CORRECTED_KEYS = tuple(f"val_selected_{k}" for k in _RECORD_KEYS) + tuple(f"last_{k}" for k in _RECORD_KEYS)


# ---------------------------------------------------------------------------
# Seeding and data (§4.3, §6.1-§6.4)
# ---------------------------------------------------------------------------


def set_global_seed(seed: int) -> None:
    """Python's `random`, torch's CPU generator and (when present) every CUDA generator (§6.1)."""
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def resolve_dataset_root(config: HypercleanConfig = DEFAULT_HYPERCLEAN) -> str:
    """`config.dataset_root` if it exists, else the first existing of /tmp/mnist, ./data/mnist, else the first (§4.3)."""
    for candidate in (config.dataset_root, "/tmp/mnist", "./data/mnist"):
        if Path(candidate).exists():
            return candidate
    return config.dataset_root


@dataclass
class HypercleanSplit:
    """One split: images, clean labels and, for the training split, dirty labels and the clean indicator."""

    data: torch.Tensor  # uint8 images at first; float after `flatten`
    targets: torch.Tensor  # clean labels (int64)
    dirty_targets: torch.Tensor | None = None  # training only: the labels every method trains on
    clean: torch.Tensor | None = None  # training only: 1.0 clean, 0.0 polluted
    rho: float = 0.0  # training only: the pollution rate

    def pollute(self, rate: float, rng=random) -> None:
        """The official pollution (§6.4), drawing from `rng` (by default Python's global `random`).

        Shuffles 0..n-1, then for the first ⌊rate·n⌋ shuffled indices, in shuffled order, draws a new label
        `rng.randint(0, |L \\ {true label}|)` (inclusive, so it can be the true label) and marks it dirty.
        """
        labels = self.targets.tolist()
        label_set = set(labels)
        n = len(labels)
        order = list(range(n))
        rng.shuffle(order)
        dirty = list(labels)
        clean = [1.0] * n
        for i in order[:int(rate * n)]:
            dirty[i] = rng.randint(0, len(label_set - {labels[i]}))
            clean[i] = 0.0
        self.dirty_targets = torch.tensor(dirty, dtype=self.targets.dtype)
        self.clean = torch.tensor(clean, dtype=torch.float32)
        self.rho = rate

    def flatten(self) -> None:
        """Float pixels divided by max(largest pixel, 1), flattened to vectors (§6.3)."""
        data = self.data.float()
        self.data = (data / max(float(data.max()), 1.0)).reshape(data.shape[0], -1)

    def to_device(self, device: torch.device | str) -> "HypercleanSplit":
        self.data = self.data.to(device)
        self.targets = self.targets.to(device)
        if self.dirty_targets is not None:
            self.dirty_targets = self.dirty_targets.to(device)
        if self.clean is not None:
            self.clean = self.clean.to(device)
        return self

    @property
    def train_targets(self) -> torch.Tensor:
        """The labels a method trains on: the dirty ones where present."""
        return self.targets if self.dirty_targets is None else self.dirty_targets


def split_and_pollute(images: torch.Tensor, targets: torch.Tensor, config: HypercleanConfig,
                      rng=random) -> tuple[HypercleanSplit, HypercleanSplit, HypercleanSplit]:
    """Shuffle the indices with `rng`, cut train/val/test, normalise each, pollute train (§6.2-§6.4).

    Uses whatever state `rng` is in: `load_hyperclean_splits` seeds the global generator first.
    """
    index = list(range(images.shape[0]))
    rng.shuffle(index)
    bounds = (0, config.train_size, config.train_size + config.val_size,
              config.train_size + config.val_size + config.test_size)
    splits = []
    for lo, hi in zip(bounds, bounds[1:]):
        chosen = torch.tensor(index[lo:hi], dtype=torch.long)
        split = HypercleanSplit(images[chosen], targets[chosen].clone())
        split.flatten()
        splits.append(split)
    splits[0].pollute(config.pollute_rate, rng)
    return splits[0], splits[1], splits[2]


def load_hyperclean_splits(config: HypercleanConfig = DEFAULT_HYPERCLEAN, seed: int = 42,
                           device: torch.device | str = "cpu", root: str | Path | None = None):
    """Seed (§6.1), load the MNIST training set with torchvision (no download), split and pollute, move to device.

    `root` (the folder holding `MNIST/raw`) overrides `resolve_dataset_root(config)`.
    """
    from torchvision import datasets

    config.validate()
    set_global_seed(seed)
    root = str(root if root is not None else resolve_dataset_root(config))
    try:
        mnist = datasets.MNIST(root, train=True, download=False)
    except RuntimeError as exc:  # torchvision's message names neither the folder nor the remedy
        raise RuntimeError(f"MNIST not found under {root!r} (expected {root}/MNIST/raw; DATA_ROOT is "
                           f"{os.environ.get('DATA_ROOT', 'unset')}; fetch it with `python -m optrepro.data fetch "
                           f"--dataset mnist --root <DATA_ROOT>`): {exc}") from None
    train, val, test = split_and_pollute(mnist.data, mnist.targets, config)
    return tuple(split.to_device(device) for split in (train, val, test))


# ---------------------------------------------------------------------------
# Models (§6.5) and losses (§6.6)
# ---------------------------------------------------------------------------


def make_model(net: str) -> nn.Module:
    """`linear`: 784 → 10; `mlp`: 784 → 300 → sigmoid → 10; default init from the global generator, on CPU."""
    if net == "linear":
        return nn.Linear(784, 10)
    if net == "mlp":
        return nn.Sequential(nn.Linear(784, 300), nn.Sigmoid(), nn.Linear(300, 10))
    raise ValueError(f"Unsupported net: {net}")


def yforward(params: Sequence[torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
    """The classifier's forward pass from a parameter list (`make_model`'s parameter order)."""
    if len(params) == 2:
        return F.linear(inputs, params[0], params[1])
    if len(params) == 4:
        return F.linear(torch.sigmoid(F.linear(inputs, params[0], params[1])), params[2], params[3])
    raise ValueError(f"expected 2 (linear) or 4 (mlp) parameter tensors, got {len(params)}")


def sum_squared_norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum(t.pow(2).sum() for t in tensors)


def _per_example_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels, reduction="none")


def _regulariser(params: Sequence[torch.Tensor], reg: float):
    # reg = 0 adds exact zeros to the loss and its derivatives: skipped.
    return reg * sum_squared_norm(params) if reg != 0.0 else 0.0


def lower_loss(params: Sequence[torch.Tensor], weights: torch.Tensor, train: HypercleanSplit, reg: float):
    """g = mean_i w_i CE(y; a_i, dirty_i) + reg ‖y‖² (§6.6) with w = σ(x)."""
    return (weights * _per_example_ce(yforward(params, train.data), train.train_targets)).mean() \
        + _regulariser(params, reg)


def upper_loss(params: Sequence[torch.Tensor], val: HypercleanSplit) -> torch.Tensor:
    """f = mean CE on the validation set with clean labels (§6.6)."""
    return F.cross_entropy(yforward(params, val.data), val.targets)


# ---------------------------------------------------------------------------
# Evaluation and selection (§7)
# ---------------------------------------------------------------------------


def compute_accuracy(params: Sequence[torch.Tensor], split: HypercleanSplit) -> torch.Tensor:
    """100 × fraction of correct arg-max predictions (a 0-d float64 tensor on the device; exact to 1e-12)."""
    with torch.no_grad():
        correct = (yforward(params, split.data).argmax(dim=1) == split.targets).sum()
        return correct.double() * 100.0 / split.targets.shape[0]


def compute_cleaner_metrics(x: torch.Tensor, clean: torch.Tensor, rho: float):
    """(F1 in percent, precision, recall) of keeping the examples with x_i ≥ 0 (§7.1), as 0-d tensors."""
    with torch.no_grad():
        kept = (x >= 0).float()
        both = (kept * clean).mean()
        precision = both / (kept.mean() + 1e-8)
        recall = both / (1.0 - rho + 1e-8)
        f1 = 100.0 * 2.0 * precision * recall / (precision + recall + 1e-8)
    return f1, precision, recall


def make_eval_record(step, train_loss, val_loss, test_accuracy, f1_score, cleaner_precision, cleaner_recall,
                     aux_value, start_time: float) -> HypercleanEval:
    """A record with `runtime_sec` = seconds since `start_time` now; tensors become floats (host sync)."""
    record = HypercleanEval(step, train_loss, val_loss, test_accuracy, f1_score, cleaner_precision,
                            cleaner_recall, aux_value, 0.0)
    record.runtime_sec = time.perf_counter() - start_time
    return record


def update_best_by_accuracy(best: HypercleanEval | None, record: HypercleanEval) -> HypercleanEval:
    """Higher accuracy by more than 1e-12, or a tie within 1e-12 with strictly larger F1 (§7.2)."""
    if best is None:
        return record
    if record.test_accuracy > best.test_accuracy + TIE_TOL:
        return record
    if abs(record.test_accuracy - best.test_accuracy) <= TIE_TOL and record.f1_score > best.f1_score:
        return record
    return best


def update_best_by_f1(best: HypercleanEval | None, record: HypercleanEval) -> HypercleanEval:
    """F1 primary, accuracy the tie-breaker (§7.2)."""
    if best is None:
        return record
    if record.f1_score > best.f1_score + TIE_TOL:
        return record
    if abs(record.f1_score - best.f1_score) <= TIE_TOL and record.test_accuracy > best.test_accuracy:
        return record
    return best


def select_by_val_loss(records: Sequence[HypercleanEval]) -> HypercleanEval:
    """The `corrected` protocol's choice: the earliest record with the lowest validation loss."""
    if not records:
        raise RuntimeError("No hyper-cleaning evaluation was recorded.")
    best = records[0]
    for record in records[1:]:
        if record.val_loss < best.val_loss - TIE_TOL:
            best = record
    return best


def _record_quantities(record: HypercleanEval) -> tuple[float, ...]:
    return (record.test_accuracy, record.f1_score, record.cleaner_precision, record.cleaner_recall,
            float(record.step), record.runtime_sec)


def summarize_hyperclean_metrics(best_accuracy: HypercleanEval | None, best_f1: HypercleanEval | None,
                                 total_runtime_sec: float) -> dict[str, float]:
    """The 20 FINAL_METRICS of §7.3, in printing order."""
    if best_accuracy is None or best_f1 is None:
        raise RuntimeError("No hyper-cleaning evaluation was recorded.")
    acc = _record_quantities(best_accuracy)
    f1 = _record_quantities(best_f1)
    values = [*acc, float(total_runtime_sec), *acc, *f1, best_accuracy.test_accuracy]
    return dict(zip(FINAL_KEYS, (float(v) for v in values)))


def corrected_extras(records: Sequence[HypercleanEval]) -> dict[str, float]:
    """`val_selected_*` (lowest validation loss) and `last_*` (last evaluation) of the iterate records."""
    out = {}
    for prefix, record in (("val_selected", select_by_val_loss(records)), ("last", records[-1])):
        for key in _RECORD_KEYS:
            out[f"{prefix}_{key}"] = float(getattr(record, key))
    return out


# ---------------------------------------------------------------------------
# Output (§9.2, §9.3)
# ---------------------------------------------------------------------------


def emit_hyperclean_eval(record: HypercleanEval, aux_name: str, iter_time: float,
                         stream: IO[str] | None = None) -> str:
    return emit("TRAIN_METRICS", {
        "step": int(record.step), "train_loss": record.train_loss, "val_loss": record.val_loss,
        "test_accuracy": record.test_accuracy, "f1_score": record.f1_score,
        "cleaner_precision": record.cleaner_precision, "cleaner_recall": record.cleaner_recall,
        aux_name: record.aux_value, "iter_time": float(iter_time),
    }, decimals={"test_accuracy": 3, "f1_score": 3}, stream=stream)


def emit_hyperclean_final(metrics: dict[str, float], stream: IO[str] | None = None) -> str:
    return emit("FINAL_METRICS", {key: float(value) for key, value in metrics.items()}, stream=stream)


# ---------------------------------------------------------------------------
# The methods (§8)
# ---------------------------------------------------------------------------


@dataclass
class HypercleanRun:
    """What a method returns: its records (as the original), the `corrected` protocol's iterate records
    (empty under `mlsbench`), the two running bests and the outer loop's duration."""

    records: list[HypercleanEval]
    iterate_records: list[HypercleanEval]
    best_accuracy: HypercleanEval | None
    best_f1: HypercleanEval | None
    total_runtime_sec: float


class _Recorder:
    """Builds, prints and keeps records; tracks the two bests."""

    def __init__(self, method: str, corrected: bool, stream: IO[str] | None):
        self.aux_name = AUX_NAMES[method]
        self.corrected = corrected
        self.stream = stream
        self.records: list[HypercleanEval] = []
        self.iterate_records: list[HypercleanEval] = []
        self.best_accuracy = self.best_f1 = None
        self.start = time.perf_counter()

    def add(self, record: HypercleanEval, iter_time: float, iterate_val_loss=None, iterate_accuracy=None):
        self.records.append(record)
        self.best_accuracy = update_best_by_accuracy(self.best_accuracy, record)
        self.best_f1 = update_best_by_f1(self.best_f1, record)
        emit_hyperclean_eval(record, self.aux_name, iter_time, self.stream)
        if self.corrected:
            self.iterate_records.append(replace(
                record,
                val_loss=float(record.val_loss if iterate_val_loss is None else iterate_val_loss),
                test_accuracy=float(record.test_accuracy if iterate_accuracy is None else iterate_accuracy)))

    def finish(self) -> HypercleanRun:
        return HypercleanRun(self.records, self.iterate_records, self.best_accuracy, self.best_f1,
                             time.perf_counter() - self.start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _run_pbgd(method: str, strategy: HypercleanStrategy, model: nn.Module, train: HypercleanSplit,
              val: HypercleanSplit, test: HypercleanSplit, net: str, corrected: bool,
              stream: IO[str] | None) -> HypercleanRun:
    """V-PBGD (§8.1) and G-PBGD (§8.2): the common loop, penalty schedule and evaluation."""
    device = train.data.device
    x = torch.zeros(train.data.shape[0], device=device, requires_grad=True)
    params = list(model.parameters())
    opt_x = torch.optim.SGD([x], lr=strategy.lrx)
    opt_y = torch.optim.SGD(params, lr=strategy.lry)
    inner_model = inner_params = opt_inner = None
    if method == "v_pbgd":
        # A second model is constructed (consuming torch random numbers), then overwritten by y's initial values.
        inner_model = make_model(net).to(device)
        inner_model.load_state_dict(copy.deepcopy(model.state_dict()))
        inner_params = list(inner_model.parameters())
        opt_inner = torch.optim.SGD(inner_params, lr=strategy.lr_inner)
    gamma_top = max(strategy.gamma_init, strategy.gamma_max)
    delta = (gamma_top - strategy.gamma_init) / strategy.gamma_argmax_step
    gamma = strategy.gamma_init
    recorder = _Recorder(method, corrected, stream)
    for k in range(strategy.outer_itr):
        evaluate = k % strategy.eval_interval == 0
        lam = min(1.0 / (gamma + 1e-8), 1.0)
        if method == "v_pbgd":
            weights = torch.sigmoid(x).detach()
            if evaluate:
                _sync(device)
            t0 = time.perf_counter()
            for _ in range(strategy.inner_itr):
                opt_inner.zero_grad()
                inner_loss = (weights * _per_example_ce(inner_model(train.data), train.train_targets)).mean() \
                    + _regulariser(inner_params, strategy.reg)
                inner_loss.backward()
                opt_inner.step()
            f = upper_loss(params, val)
            g = lower_loss(params, torch.sigmoid(x), train, strategy.reg)
            with torch.no_grad():
                inner_ce = _per_example_ce(inner_model(train.data), train.train_targets)
                inner_reg = _regulariser(inner_params, strategy.reg)
            v = (torch.sigmoid(x) * inner_ce).mean() + inner_reg
            aux = g - v
            objective = lam * (f + gamma * aux)
        else:
            if evaluate:
                _sync(device)
            t0 = time.perf_counter()
            f = upper_loss(params, val)
            g = lower_loss(params, torch.sigmoid(x), train, strategy.reg)
            grads = torch.autograd.grad(g, params, create_graph=True)
            penalty = sum_squared_norm(grads)
            aux = torch.sqrt(penalty.detach() + 1e-12)
            objective = lam * (f + 0.5 * gamma * penalty)
        opt_x.zero_grad()
        opt_y.zero_grad()
        objective.backward()
        opt_x.step()
        opt_y.step()
        gamma = min(gamma_top, gamma + delta)
        if evaluate:
            _sync(device)
            iter_time = time.perf_counter() - t0
            test_acc = compute_accuracy(params, test)
            f1, precision, recall = compute_cleaner_metrics(x.detach(), train.clean, train.rho)
            record = make_eval_record(k, g.detach(), f.detach(), test_acc, f1, precision, recall, aux.detach(),
                                      recorder.start)
            iterate_val = None
            if corrected:  # the validation loss of the evaluated (updated) y; no RNG, no effect on the run
                with torch.no_grad():
                    iterate_val = upper_loss(params, val)
            recorder.add(record, iter_time, iterate_val_loss=iterate_val)
    return recorder.finish()


def run_v_pbgd(strategy, model, train, val, test, net, corrected=False, stream=None) -> HypercleanRun:
    return _run_pbgd("v_pbgd", strategy, model, train, val, test, net, corrected, stream)


def run_g_pbgd(strategy, model, train, val, test, net, corrected=False, stream=None) -> HypercleanRun:
    return _run_pbgd("g_pbgd", strategy, model, train, val, test, net, corrected, stream)


UpdateMap = Callable[[Sequence[torch.Tensor], torch.Tensor], list[torch.Tensor]]


def reverse_hypergradient(history: Sequence[Sequence[torch.Tensor]], x: torch.Tensor, update_map: UpdateMap,
                          outer_loss: Callable[[Sequence[torch.Tensor]], torch.Tensor]) -> torch.Tensor:
    """Reverse-mode hypergradient over a history H = [h_0, …, h_K] of the map y ↦ Φ(y; x) (§8.5).

    Every h_j becomes a fresh leaf. With α = ∇_y f(h_K) (f does not depend on x directly), for
    j = K−1, …, 0: recompute Φ(h_j; x), add αᵀ ∂Φ/∂x to the hypergradient and set α ← αᵀ ∂Φ/∂h_j.
    The map is recomputed at h_j, whatever produced h_{j+1}: with a truncated history (K < T) the oldest
    map sits at h_0 (the fresh initialisation), as in the original. Sets and returns x.grad.
    """
    leaves = [[p.detach().requires_grad_(True) for p in params] for params in history]
    alpha = torch.autograd.grad(outer_loss(leaves[-1]), leaves[-1])
    hypergrad = torch.zeros_like(x)
    for j in range(len(leaves) - 2, -1, -1):
        mapped = update_map(leaves[j], x)
        wrt = [x, *leaves[j]] if j > 0 else [x]  # α is not needed past h_0
        vjps = torch.autograd.grad(mapped, wrt, grad_outputs=alpha)
        hypergrad = hypergrad + vjps[0]
        alpha = vjps[1:]
    x.grad = hypergrad
    return hypergrad


def _inner_step(params: Sequence[torch.Tensor], x: torch.Tensor, train: HypercleanSplit, lr_inner: float,
                reg: float, create_graph: bool) -> list[torch.Tensor]:
    """Φ(y; x) = y − lr_inner ∇_y[mean σ(x_i) CE_i(y) + reg ‖y‖²]."""
    loss = lower_loss(params, torch.sigmoid(x), train, reg)
    grads = torch.autograd.grad(loss, params, create_graph=create_graph)
    return [p - lr_inner * g for p, g in zip(params, grads)]


def run_rhg_family(strategy: HypercleanStrategy, model: nn.Module, train: HypercleanSplit,
                   val: HypercleanSplit, test: HypercleanSplit, net: str, corrected: bool = False,
                   stream: IO[str] | None = None) -> HypercleanRun:
    """RHG and T-RHG (§8.3): fresh classifier each outer step, T unrolled steps, reverse over the last K.

    `model` is not used (each outer step constructs its own); it is accepted for a uniform signature.
    """
    del model
    device = train.data.device
    T, K = strategy.T, strategy.K
    x = torch.zeros(train.data.shape[0], device=device, requires_grad=True)
    opt_x = torch.optim.SGD([x], lr=strategy.lr)
    recorder = _Recorder(strategy.method, corrected, stream)

    def update_map(params, hparams):
        return _inner_step(params, hparams, train, strategy.lr_inner, strategy.reg, create_graph=True)

    def outer_loss(params):
        return upper_loss(params, val)

    for k in range(strategy.outer_itr):
        y0 = [p.detach() for p in make_model(net).to(device).parameters()]
        _sync(device)
        t0 = time.perf_counter()
        # Forward unroll. The original keeps this graph but never differentiates through it (the reverse pass
        # detaches the history), so the steps are taken without one: same values, memory independent of T.
        x_fixed = x.detach()
        history = [y0]
        current = y0
        for t in range(T):
            leaves = [p.requires_grad_(True) for p in (q.detach() for q in current)]
            with torch.enable_grad():
                current = [p.detach() for p in _inner_step(leaves, x_fixed, train, strategy.lr_inner, strategy.reg,
                                                          create_graph=False)]
            if t >= T - K:
                history.append(current)
        opt_x.zero_grad()
        reverse_hypergradient(history, x, update_map, outer_loss)
        opt_x.step()
        _sync(device)
        iter_time = time.perf_counter() - t0
        with torch.no_grad():
            y_last = history[-1]
            val_loss = upper_loss(y_last, val)
            weights = torch.sigmoid(x)
            train_losses = torch.stack([(weights * _per_example_ce(yforward(h, train.data), train.train_targets)).mean()
                                        for h in history])
            accuracies = torch.stack([compute_accuracy(h, test) for h in history])
            f1, precision, recall = compute_cleaner_metrics(x, train.clean, train.rho)
            inner_objective = train_losses.min()
            record = make_eval_record(k, inner_objective, val_loss, accuracies.max(), f1, precision, recall,
                                      inner_objective, recorder.start)
        # Corrected: the iterate evaluated is y_T, the one whose validation loss is recorded.
        recorder.add(record, iter_time, iterate_accuracy=accuracies[-1] if corrected else None)
    return recorder.finish()


METHOD_RUNNERS = {"v_pbgd": run_v_pbgd, "g_pbgd": run_g_pbgd, "rhg": run_rhg_family, "t_rhg": run_rhg_family}


# ---------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------


def run_hyperclean(strategy: HypercleanStrategy, net: str = "linear", seed: int = 42,
                   config: HypercleanConfig = DEFAULT_HYPERCLEAN, device: str | torch.device = "cpu",
                   protocol: str = "mlsbench", outer_itr: int | None = None, root: str | Path | None = None,
                   splits=None, stream: IO[str] | None = None) -> dict[str, float]:
    """One hyper-cleaning run: validate, load data (seeding), build the model, run the method, print.

    `outer_itr` overrides the strategy's budget (quick scale); `root` the MNIST folder; `splits` (train, val,
    test) skips loading but then the caller must have seeded (`set_global_seed`) as `load_hyperclean_splits`
    does. Returns the FINAL_METRICS (20 keys of §7.3, then under `corrected` the CORRECTED_KEYS).
    """
    strategy.validate()
    if outer_itr is not None:
        strategy = replace(strategy, outer_itr=int(outer_itr))
        strategy.validate()
    if net not in NETS:
        raise ValueError(f"Unsupported net: {net}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unsupported protocol: {protocol}; expected one of {', '.join(PROTOCOLS)}")
    assert strategy.method in HYPERCLEAN_METHODS
    device = torch.device(device)
    if splits is None:
        splits = load_hyperclean_splits(config, seed, device, root)
    train, val, test = splits
    # Created after the data, on CPU from the global generator, then moved (§6.5). [UNCERTAIN for RHG, which
    # builds its own model every outer step: whether the original builds this one first is not recorded.]
    model = make_model(net).to(device)
    corrected = protocol == "corrected"
    result = METHOD_RUNNERS[strategy.method](strategy, model, train, val, test, net, corrected=corrected,
                                             stream=stream)
    metrics = summarize_hyperclean_metrics(result.best_accuracy, result.best_f1, result.total_runtime_sec)
    if corrected:
        metrics.update(corrected_extras(result.iterate_records))
    emit_hyperclean_final(metrics, stream)
    return metrics
