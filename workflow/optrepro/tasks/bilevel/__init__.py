"""Penalty-based bilevel optimization (docs/tasks/bilevel.md): the toy problem and MNIST data hyper-cleaning.

The driver is `python -m optrepro.tasks.bilevel`.
"""

from .config import (
    BENCHMARKS,
    DATASETS,
    OVERRIDE_FIELDS,
    PROTOCOLS,
    job_resources,
    parse_overrides,
    resolve_config,
)

# What ranks and performance profiles compare across the task's benchmarks, per protocol where they differ:
# `corrected` ranks hyper-cleaning by the evaluation chosen on validation loss, never by one chosen on the test set.
HYPERCLEAN_HEADLINE = {"mlsbench": "test_accuracy", "corrected": "val_selected_test_accuracy"}
HEADLINE = {"toy-convergence": "convergence_steps", "hyperclean-linear": HYPERCLEAN_HEADLINE,
            "hyperclean-mlp": HYPERCLEAN_HEADLINE}
# What a reader must know about a metric that ranks: which evaluation it comes from.
METRIC_NOTES = {
    "test_accuracy": "the best test accuracy over all evaluations, i.e. a checkpoint chosen on the test set, as the "
                     "original reports it",
    "val_selected_test_accuracy": "the test accuracy of the evaluation with the lowest validation loss (nothing "
                                  "chosen on the test set)",
}
# The toy under `mlsbench` runs the original's own Python-float loop: a seed gives the original's numbers exactly.
EXACT_PER_SEED = {("toy-convergence", "mlsbench")}
METRICS = {
    # toy-convergence
    "convergence_steps": "lower", "median_steps": "lower", "success_rate": "higher",
    "final_projected_grad": "lower", "final_residual": "lower", "runtime_sec": "lower",
    # hyperclean-*; under `corrected` also chosen by validation loss and at the last evaluation
    "test_accuracy": "higher", "f1_score": "higher", "cleaner_precision": "higher", "cleaner_recall": "higher",
    "val_selected_test_accuracy": "higher", "val_selected_f1_score": "higher", "last_test_accuracy": "higher",
    "last_f1_score": "higher", "total_runtime_sec": "lower",
}

# The task's interface (optrepro.tasks), read by the workflow and the report without torch.
__all__ = ["BENCHMARKS", "DATASETS", "OVERRIDE_FIELDS", "PROTOCOLS", "job_resources", "parse_overrides",
           "resolve_config", "HEADLINE", "METRICS", "METRIC_NOTES", "EXACT_PER_SEED"]
