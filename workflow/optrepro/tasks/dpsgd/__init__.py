"""DP-SGD on MNIST, Fashion-MNIST and CIFAR-10 (shared/tasks/dpsgd.md); the driver is `python -m optrepro.tasks.dpsgd`.

`audit` (a verdict token, not a number) is in FINAL_METRICS but not in
METRICS, which lists the numeric metrics a report summarises.
"""

from .config import BENCHMARKS, DATASETS, PROTOCOLS, job_resources  # noqa: F401 - the task's interface

METRICS = {"score": "higher", "accuracy": "higher", "best_accuracy": "higher", "epsilon": "lower",
           "epsilon_rdp": "lower", "audit_ratio": "higher"}
