"""The DP-SGD task's configuration, without torch: options, benchmarks, protocols, overrides, job sizes.

Kept free of torch so that the Snakefile (parsed on every job start) can size
jobs and check names cheaply. `DPSGDConfig` holds the original's command-line
options plus the fields optrepro adds: which accountant the
protocol uses and the scale overrides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from ..scale import TaskConfigError
from ..scale import parse_overrides as parse_field_overrides

# Accuracies and ε print with 4 decimals in TEST_METRICS; FINAL_METRICS keeps them alike.
FOUR_DECIMALS = dict.fromkeys(("score", "accuracy", "best_accuracy", "epsilon", "epsilon_rdp", "audit_ratio"), 4)


@dataclass(frozen=True)
class DPSGDConfig:
    dataset: str = "mnist"
    epochs: int = 20
    batch_size: int = 256
    lr: float = 0.1
    max_grad_norm: float = 1.0
    target_epsilon: float = 3.0
    target_delta: float = 1e-5
    # "benchmark": the original's own formula (mlsbench); "rdp"/"prv": an Opacus accountant (corrected).
    accountant: str = "benchmark"
    # Scale: use only the first N training / test examples (0 = all of them).
    max_train_examples: int = 0
    max_test_examples: int = 0
    # Run the privacy audit (audit.py); it never changes the training, so this only saves its time.
    audit: bool = True


DEFAULT_CONFIG = DPSGDConfig()

# The three evaluation commands: batch size and epochs as inferred from the original;
# ε = 3, δ = 1e-5, lr and clip norm are the defaults.
BENCHMARKS = {"mnist": dict(dataset="mnist", batch_size=256, epochs=5),
              "fmnist": dict(dataset="fmnist", batch_size=256, epochs=5),
              "cifar10": dict(dataset="cifar10", batch_size=256, epochs=30)}
DATASETS = {name: settings["dataset"] for name, settings in BENCHMARKS.items()}
# mlsbench: the benchmark's formula calibrates σ and reports ε. corrected: Opacus (RDP; PRV with accountant=prv).
PROTOCOLS = {"mlsbench": dict(accountant="benchmark"), "corrected": dict(accountant="rdp")}
ACCOUNTANTS = {"mlsbench": ("benchmark",), "corrected": ("rdp", "prv")}

TRAIN_SIZES = {"mnist": 60_000, "fmnist": 60_000, "cifar10": 50_000}
IMAGE_SIZES = {"mnist": 28 * 28, "fmnist": 28 * 28, "cifar10": 3 * 32 * 32}
# Examples per second of one training process on one CPU thread (bench/dpsgd_speed.py figures rounded
# down); GPUs are far faster, so runtimes sized with these are generous there.
SIZING_EXAMPLES_PER_SECOND = {"mnist": 2_000, "fmnist": 2_000, "cifar10": 150}


# The dataset is the benchmark's, not a field to set.
OVERRIDE_TYPES = {f.name: type(getattr(DEFAULT_CONFIG, f.name)) for f in fields(DPSGDConfig) if f.name != "dataset"}
OVERRIDE_FIELDS = tuple(OVERRIDE_TYPES)


def parse_overrides(items: list[str]) -> dict[str, object]:
    """`field=value` pairs for DPSGDConfig, typed like the field."""
    return parse_field_overrides(items, OVERRIDE_TYPES)


def validate(config: DPSGDConfig, protocol: str) -> None:
    """Reject values the driver cannot run with; the first failure, in field order."""
    if config.epochs < 1 or config.batch_size < 1:
        raise TaskConfigError("epochs and batch_size must be at least 1")
    for name in ("lr", "max_grad_norm", "target_epsilon"):
        if not (math.isfinite(getattr(config, name)) and getattr(config, name) > 0):
            raise TaskConfigError(f"{name} must be a positive number, got {getattr(config, name)}")
    if not 0 < config.target_delta < 1:
        raise TaskConfigError(f"target_delta must lie in (0, 1), got {config.target_delta}")
    if config.accountant not in ACCOUNTANTS[protocol]:
        raise TaskConfigError(f"accountant {config.accountant!r} does not belong to protocol {protocol}; "
                          f"expected one of {', '.join(ACCOUNTANTS[protocol])}")
    if config.max_train_examples < 0 or config.max_test_examples < 0:
        raise TaskConfigError("max_train_examples and max_test_examples must be >= 0 (0 = all)")


def resolve_config(benchmark: str, protocol: str, overrides: dict[str, object] | None = None) -> DPSGDConfig:
    """DEFAULT_CONFIG, then the protocol, the benchmark's settings, then scale overrides; validated."""
    config = replace(DEFAULT_CONFIG, **PROTOCOLS[protocol], **BENCHMARKS[benchmark])
    config = replace(config, **(overrides or {}))
    validate(config, protocol)
    return config


def train_examples(config: DPSGDConfig) -> int:
    size = TRAIN_SIZES[config.dataset]
    return min(size, config.max_train_examples) if config.max_train_examples else size


def job_resources(benchmark: str, protocol: str, overrides: list[str]) -> dict[str, int]:
    """Memory (MB) and runtime (minutes) to request for one training process.

    Memory: ~2.5 GB for Python, torch, torchvision and Opacus, the dataset as
    uint8 and float32 (twice, while it is converted), and 1 GB for one step's
    per-example activations and gradients (B x 132k floats for CIFAR10Net, a
    few copies). Runtime: every epoch's training examples at
    SIZING_EXAMPLES_PER_SECOND, doubled, plus 5 minutes for start-up and evaluation.
    """
    config = resolve_config(benchmark, protocol, parse_overrides(overrides))
    data_mb = math.ceil(9 * TRAIN_SIZES[config.dataset] * IMAGE_SIZES[config.dataset] / 2**20)
    seconds = config.epochs * train_examples(config) / SIZING_EXAMPLES_PER_SECOND[config.dataset]
    return {"mem_mb": 3_500 + data_mb, "runtime": 5 + math.ceil(2 * seconds / 60)}
