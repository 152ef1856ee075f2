"""Penalty-based bilevel optimization (docs/tasks/bilevel.md): the toy problem and MNIST data hyper-cleaning.

The driver is `python -m optrepro.tasks.bilevel`.
"""

from .config import BENCHMARKS, DATASETS, OVERRIDE_FIELDS, PROTOCOLS, job_resources, parse_overrides, resolve_config  # noqa: F401

# What ranks and performance profiles compare across the task's benchmarks.
HEADLINE = {"toy-convergence": "convergence_steps", "hyperclean-linear": "test_accuracy",
            "hyperclean-mlp": "test_accuracy"}
METRICS = {
    # toy-convergence
    "convergence_steps": "lower", "median_steps": "lower", "success_rate": "higher",
    "final_projected_grad": "lower", "final_residual": "lower", "runtime_sec": "lower",
    # hyperclean-*; under `corrected` also chosen by validation loss and at the last evaluation
    "test_accuracy": "higher", "f1_score": "higher", "cleaner_precision": "higher", "cleaner_recall": "higher",
    "val_selected_test_accuracy": "higher", "val_selected_f1_score": "higher", "last_test_accuracy": "higher",
    "last_f1_score": "higher", "total_runtime_sec": "lower",
}
