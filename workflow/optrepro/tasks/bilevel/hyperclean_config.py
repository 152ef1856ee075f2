"""The bilevel task's data hyper-cleaning configuration, without torch (bilevel.md §3.2, §3.4, §3.5).

Kept free of torch, like `config`, so that the Snakefile can read names and
sizes cheaply. Names, types and defaults are the original driver's. The
original's `ValueError` messages of `HypercleanStrategy.validate` are not in
the sources (bilevel.md gives the checks and their order only); the messages
here follow `ToyStrategy`'s style.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields

HYPERCLEAN_METHODS = ("v_pbgd", "g_pbgd", "rhg", "t_rhg")
PBGD_METHODS = ("v_pbgd", "g_pbgd")
RHG_METHODS = ("rhg", "t_rhg")
NETS = ("linear", "mlp")
# `mlsbench`: as the original reports (best test accuracy over evaluations); `corrected`: the same keys plus
# the evaluation chosen by validation loss and the last evaluation (no choice made on the test set).
PROTOCOLS = ("mlsbench", "corrected")
MNIST_TRAIN_IMAGES = 60_000

# Read once at import time, as the original does (§3.2).
_DEFAULT_DATASET_ROOT = os.environ.get("DATA_ROOT", "/data") + "/mnist"


@dataclass(frozen=True)
class HypercleanConfig:
    """The data hyper-cleaning problem's fixed settings (§3.2); `DEFAULT_HYPERCLEAN` is the one the original uses."""

    dataset_name: str = "MNIST"  # informational only
    dataset_root: str = _DEFAULT_DATASET_ROOT
    train_size: int = 5000
    val_size: int = 5000
    test_size: int = 10000
    pollute_rate: float = 0.5

    def validate(self) -> None:
        """Checks for scale overrides (an optrepro addition: the original never changes DEFAULT_HYPERCLEAN)."""
        for name in ("train_size", "val_size", "test_size"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool)) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        total = self.train_size + self.val_size + self.test_size
        if total > MNIST_TRAIN_IMAGES:
            raise ValueError(f"train_size + val_size + test_size must not exceed {MNIST_TRAIN_IMAGES}, got {total}.")
        rate = self.pollute_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) \
                or not 0.0 <= rate < 1.0:
            # rate 1 would make the recall's denominator 1 - rho + 1e-8 degenerate.
            raise ValueError(f"pollute_rate must lie in [0, 1), got {rate!r}.")


@dataclass(frozen=True)
class HypercleanStrategy:
    """What `get_hyperclean_strategy(net)` returns (§3.4); fields a method does not use are ignored."""

    method: str
    lrx: float = 0.0
    lry: float = 0.0
    lr_inner: float = 0.0
    gamma_init: float = 0.0
    gamma_max: float = 0.0
    gamma_argmax_step: int = 1
    outer_itr: int = 0
    inner_itr: int = 1
    lr: float = 0.0
    T: int = 0
    K: int = 0
    reg: float = 0.0
    eval_interval: int = 10

    def validate(self) -> None:
        """The original's checks, in its order (§3.4); raises ValueError on the first failure."""
        if self.method not in HYPERCLEAN_METHODS:
            raise ValueError(f"Unsupported hyperclean method: {self.method}")
        if self.eval_interval <= 0:
            raise ValueError("eval_interval must be positive.")
        if self.reg < 0.0:
            raise ValueError("reg must be non-negative.")
        if self.method in PBGD_METHODS:
            if self.lrx <= 0.0 or self.lry <= 0.0:
                raise ValueError("lrx and lry must be positive.")
            if self.outer_itr <= 0:
                raise ValueError("outer_itr must be positive.")
            if self.gamma_init < 0.0 or self.gamma_max < 0.0:
                raise ValueError("gamma_init and gamma_max must be non-negative.")
            if self.gamma_argmax_step <= 0:
                raise ValueError("gamma_argmax_step must be positive.")
            if self.method == "v_pbgd":
                if self.lr_inner <= 0.0:
                    raise ValueError("lr_inner must be positive for v_pbgd.")
                if self.inner_itr <= 0:
                    raise ValueError("inner_itr must be positive for v_pbgd.")
        else:
            if self.lr <= 0.0 or self.lr_inner <= 0.0:
                raise ValueError("lr and lr_inner must be positive.")
            if self.outer_itr <= 0 or self.T <= 0 or self.K <= 0:
                raise ValueError("outer_itr, T and K must be positive.")
            if self.K > self.T:
                raise ValueError("K must not exceed T.")


@dataclass
class HypercleanEval:
    """One evaluation record (§3.5); tensor inputs (0-d) become Python floats when the record is built."""

    step: int
    train_loss: float
    val_loss: float
    test_accuracy: float
    f1_score: float
    cleaner_precision: float
    cleaner_recall: float
    aux_value: float
    runtime_sec: float

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            setattr(self, f.name, int(value) if f.name == "step" else float(value))


DEFAULT_HYPERCLEAN = HypercleanConfig()
