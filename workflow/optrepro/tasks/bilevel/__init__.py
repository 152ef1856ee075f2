"""Penalty-based bilevel optimization (shared/tasks/bilevel.md): the toy problem and MNIST data hyper-cleaning.

The driver is `python -m optrepro.tasks.bilevel`. `config`, `hyperclean_config`
and `benchmarks` are free of torch (the Snakefile imports this package); `toy`
and `hyperclean` compute.
"""

from .benchmarks import BENCHMARKS, DATASETS, PROTOCOLS, job_resources  # noqa: F401 - the task's interface

# What ranks and performance profiles compare across the task's benchmarks.
HEADLINE = {"toy-convergence": "convergence_steps", "hyperclean-linear": "test_accuracy",
            "hyperclean-mlp": "test_accuracy"}
METRICS = {
    # toy-convergence (§5.6)
    "convergence_steps": "lower", "median_steps": "lower", "success_rate": "higher",
    "final_projected_grad": "lower", "final_residual": "lower", "runtime_sec": "lower",
    # hyperclean-* (§7.3); under `corrected` also chosen by validation loss and at the last evaluation
    "test_accuracy": "higher", "f1_score": "higher", "cleaner_precision": "higher", "cleaner_recall": "higher",
    "val_selected_test_accuracy": "higher", "val_selected_f1_score": "higher", "last_test_accuracy": "higher",
    "last_f1_score": "higher", "total_runtime_sec": "lower",
}
