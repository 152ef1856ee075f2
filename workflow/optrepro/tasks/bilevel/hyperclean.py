"""MNIST data hyper-cleaning as the original set it up: seeding, data, models, losses, evaluation, selection.

`load_hyperclean_splits`: seeding, the shuffle, the splits, per-split normalisation and the official
pollution, which can give an example its true label back; the models and losses; evaluation and the selection
of reported records (`update_best_by_accuracy`, `update_best_by_f1`, `summarize_hyperclean_metrics`; under
`corrected` also `select_by_val_loss`, `corrected_extras`). The methods are `methods.py`.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...data.manifest import DATA_ROOT_ENV
from .config import DEFAULT_HYPERCLEAN, HypercleanConfig, HypercleanEval

TIE_TOL = 1e-12

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


def set_global_seed(seed: int) -> None:
    """Python's `random`, torch's CPU generator and (when present) every CUDA generator."""
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def resolve_dataset_root(config: HypercleanConfig = DEFAULT_HYPERCLEAN) -> str:
    """`config.dataset_root` if it exists, else the first existing of /tmp/mnist, ./data/mnist, else the first."""
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
        """The official pollution, drawing from `rng` (by default Python's global `random`).

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
        """Float pixels divided by max(largest pixel, 1), flattened to vectors."""
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
    """Shuffle the indices with `rng`, cut train/val/test, normalise each, pollute train.

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
    """Seed, load the MNIST training set with torchvision (no download), split and pollute, move to device.

    `root` (the folder holding `MNIST/raw`) overrides `resolve_dataset_root(config)`.
    """
    from torchvision import datasets

    config.validate()
    set_global_seed(seed)
    root = str(root if root is not None else resolve_dataset_root(config))
    try:
        mnist = datasets.MNIST(root, train=True, download=False)
    except RuntimeError as exc:  # torchvision's message names neither the folder nor the remedy
        raise RuntimeError(f"MNIST not found under {root!r} (expected {root}/MNIST/raw; {DATA_ROOT_ENV} is "
                           f"{os.environ.get(DATA_ROOT_ENV, 'unset')}; fetch it with `python -m optrepro.data fetch "
                           f"--dataset mnist --root <DATA_ROOT>`): {exc}") from None
    train, val, test = split_and_pollute(mnist.data, mnist.targets, config)
    return tuple(split.to_device(device) for split in (train, val, test))


# ---------------------------------------------------------------------------
# Hyper-cleaning: models and losses
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
    """g = mean_i w_i CE(y; a_i, dirty_i) + reg ‖y‖² with w = σ(x)."""
    return (weights * _per_example_ce(yforward(params, train.data), train.train_targets)).mean() \
        + _regulariser(params, reg)


def upper_loss(params: Sequence[torch.Tensor], val: HypercleanSplit) -> torch.Tensor:
    """f = mean CE on the validation set with clean labels."""
    return F.cross_entropy(yforward(params, val.data), val.targets)


# ---------------------------------------------------------------------------
# Hyper-cleaning: evaluation and selection
# ---------------------------------------------------------------------------


def compute_accuracy(params: Sequence[torch.Tensor], split: HypercleanSplit) -> torch.Tensor:
    """100 × fraction of correct arg-max predictions (a 0-d float64 tensor on the device; exact to 1e-12)."""
    with torch.no_grad():
        correct = (yforward(params, split.data).argmax(dim=1) == split.targets).sum()
        return correct.double() * 100.0 / split.targets.shape[0]


def compute_cleaner_metrics(x: torch.Tensor, clean: torch.Tensor, rho: float):
    """(F1 in percent, precision, recall) of keeping the examples with x_i ≥ 0, as 0-d tensors."""
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


def _update_best(best: HypercleanEval | None, record: HypercleanEval, primary: str,
                 tie_breaker: str) -> HypercleanEval:
    """`record` if its `primary` beats the best's by more than 1e-12, or ties within 1e-12 with a strictly
    larger `tie_breaker`; else the best."""
    if best is None:
        return record
    new, old = getattr(record, primary), getattr(best, primary)
    if new > old + TIE_TOL or (abs(new - old) <= TIE_TOL and getattr(record, tie_breaker) > getattr(best, tie_breaker)):
        return record
    return best


def update_best_by_accuracy(best: HypercleanEval | None, record: HypercleanEval) -> HypercleanEval:
    """Accuracy primary, F1 the tie-breaker: the earliest record with the highest test accuracy."""
    return _update_best(best, record, "test_accuracy", "f1_score")


def update_best_by_f1(best: HypercleanEval | None, record: HypercleanEval) -> HypercleanEval:
    """F1 primary, accuracy the tie-breaker."""
    return _update_best(best, record, "f1_score", "test_accuracy")


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
    """The original's 20 hyper-cleaning FINAL_METRICS, in printing order."""
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
