"""DP-SGD on MNIST, Fashion-MNIST and CIFAR-10 (docs/tasks/dpsgd.md); the driver is `python -m optrepro.tasks.dpsgd`.

`audit` (a verdict token, not a number) is in FINAL_METRICS but not in
METRICS, which lists the numeric metrics a report summarises.
"""

from .config import BENCHMARKS, DATASETS, OVERRIDE_FIELDS, PROTOCOLS, job_resources, parse_overrides, resolve_config  # noqa: F401

METRICS = {"score": "higher", "accuracy": "higher", "best_accuracy": "higher", "epsilon": "lower",
           "epsilon_rdp": "lower", "audit_ratio": "higher"}
