"""Sparse parity with a 2-layer MLP (docs/tasks/parity.md); the driver is `python -m optrepro.tasks.parity`."""

from .config import (
    BENCHMARKS,
    OVERRIDE_FIELDS,
    PROTOCOLS,
    job_resources,
    parse_overrides,
    resolve_config,
)

DATASETS: dict[str, str] = {}  # parity generates its data
METRICS = {"test_accuracy": "higher", "test_accuracy_std": "lower", "mean_steps": "lower"}

# The task's interface (optrepro.tasks), read by the workflow and the report without torch.
__all__ = ["BENCHMARKS", "OVERRIDE_FIELDS", "PROTOCOLS", "job_resources", "parse_overrides", "resolve_config",
           "DATASETS", "METRICS"]
