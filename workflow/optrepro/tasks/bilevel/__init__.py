"""Penalty-based bilevel optimization (docs/tasks/bilevel.md): the toy problem and MNIST data hyper-cleaning.

The driver is `python -m optrepro.tasks.bilevel`.
"""

import math

from ..spec import FigureSpec, TaskSpec
from .config import BENCHMARKS, DATASETS, OVERRIDE_FIELDS, PROTOCOLS, job_resources, parse_overrides, resolve_config

# What ranks and performance profiles compare across the task's benchmarks, per protocol where they differ:
# `corrected` ranks hyper-cleaning by the evaluation chosen on validation loss, never by one chosen on the test set.
HYPERCLEAN_HEADLINE = {"mlsbench": "test_accuracy", "corrected": "val_selected_test_accuracy"}

TASK = TaskSpec(
    name="bilevel",
    summary="Penalty-based bilevel optimization: the toy problem and MNIST data hyper-cleaning",
    benchmarks=BENCHMARKS,
    protocols=PROTOCOLS,
    metrics={
        # toy-convergence
        "convergence_steps": "lower", "median_steps": "lower", "success_rate": "higher",
        "final_projected_grad": "lower", "final_residual": "lower", "runtime_sec": "lower",
        # hyperclean-*; under `corrected` also chosen by validation loss and at the last evaluation
        "test_accuracy": "higher", "f1_score": "higher", "cleaner_precision": "higher", "cleaner_recall": "higher",
        "val_selected_test_accuracy": "higher", "val_selected_f1_score": "higher", "last_test_accuracy": "higher",
        "last_f1_score": "higher", "total_runtime_sec": "lower",
    },
    # hyper-cleaning's accuracies and F1 scores are percentages, the cleaner's precision and recall fractions
    ranges={**dict.fromkeys(("convergence_steps", "median_steps", "final_projected_grad", "final_residual",
                             "runtime_sec", "total_runtime_sec"), (0, math.inf)),
            **dict.fromkeys(("success_rate", "cleaner_precision", "cleaner_recall"), (0, 1)),
            **dict.fromkeys(("test_accuracy", "f1_score", "val_selected_test_accuracy", "val_selected_f1_score",
                             "last_test_accuracy", "last_f1_score"), (0, 100))},
    override_fields=OVERRIDE_FIELDS,
    parse_overrides=parse_overrides,
    resolve_config=resolve_config,
    job_resources=job_resources,
    driver="optrepro.tasks.bilevel.driver",
    # toy_starting_points(seed); hyper-cleaning's set_global_seed(seed) before load_hyperclean_splits
    seed_fixes="the toy's 1,000 starting points; hyper-cleaning's shuffle, splits, corrupted labels and the "
               "global seed the model is initialised from",
    leaderboard_id="optimization-bilevel",
    # hyper-cleaning's first two evaluations, RHG/T-RHG unrolled 5 steps (unrolled 20, the MLP's 20 outer
    # steps took 4.5 minutes beside other work); the toy's every start, 2,000 steps a penalty stage (a strategy
    # whose starts converge within that prints the original's numbers)
    check_overrides=("max_outer_itr=20", "max_unroll=5", "max_steps_per_gamma=2000"),
    machine_dependent=frozenset({"runtime_sec", "total_runtime_sec", "best_accuracy_runtime_sec",
                                 "best_f1_runtime_sec"}),
    strategy_functions=("get_toy_strategy", "get_hyperclean_strategy"),
    original_names=("argparse", "json", "math", "os", "random", "sys", "time", "asdict", "dataclass", "Path",
                    "torch", "nn", "F", "datasets", "ToyProblemConfig", "DEFAULT_TOY", "ToyStrategy",
                    "HypercleanConfig", "DEFAULT_HYPERCLEAN", "HypercleanStrategy", "HypercleanEval",
                    "HypercleanSplit", "set_global_seed", "sum_squared_norm", "toy_f", "toy_df", "toy_g", "toy_dg",
                    "toy_gpbgd_penalty_grad", "toy_penalized_gradient", "project_x", "run_toy",
                    "resolve_dataset_root", "load_hyperclean_splits", "make_model", "compute_accuracy",
                    "compute_cleaner_metrics", "make_eval_record", "update_best_by_accuracy", "update_best_by_f1",
                    "summarize_hyperclean_metrics", "yforward", "run_v_pbgd", "run_g_pbgd", "run_rhg_family",
                    "run_hyperclean", "parse_args", "resolve_device", "main"),
    # This project's own, beside them: the correct toy derivative, the start points and the original's own toy
    # loop, which strategies may call to compare.
    added_names=("toy_df_exact", "toy_starting_points", "run_toy_reference"),
    datasets=DATASETS,
    headline={"toy-convergence": "convergence_steps", "hyperclean-linear": HYPERCLEAN_HEADLINE,
              "hyperclean-mlp": HYPERCLEAN_HEADLINE},
    metric_notes={
        "test_accuracy": "the best test accuracy over all evaluations, i.e. a checkpoint chosen on the test set, as "
                         "the original reports it",
        "val_selected_test_accuracy": "the test accuracy of the evaluation with the lowest validation loss (nothing "
                                      "chosen on the test set)",
    },
    # The toy under `mlsbench` runs the original's own Python-float loop: a seed gives the original's numbers
    # exactly.
    exact_per_seed=frozenset({("toy-convergence", "mlsbench")}),
    figures=(FigureSpec(
        "step_distribution", "Bilevel toy step counts",
        "Empirical distribution (CDF) of the steps each start of the toy problem took, all seeds pooled; a start "
        "that missed the tolerance counts at the step budget.", "optrepro.report.figures:step_distribution"),),
)
