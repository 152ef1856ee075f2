"""Sparse parity with a 2-layer MLP (shared/tasks/parity.md); the driver is `python -m optrepro.tasks.parity`."""

from .config import BENCHMARKS, PROTOCOLS, job_resources  # noqa: F401 - the task's interface (optrepro.tasks)

DATASETS: dict[str, str] = {}  # parity generates its data
METRICS = {"test_accuracy": "higher", "test_accuracy_std": "lower", "mean_steps": "lower"}
