"""Sparse parity with a 2-layer MLP (docs/tasks/parity.md); the driver is `python -m optrepro.tasks.parity`."""

import math

from ..spec import FigureSpec, TaskSpec
from .config import (
    BENCHMARKS,
    DEFAULT_TASK,
    OVERRIDE_FIELDS,
    PROTOCOLS,
    SMOKE_OVERRIDES,
    job_resources,
    parse_overrides,
    resolve_config,
)

TASK = TaskSpec(
    name="parity",
    summary="Sparse parity with a 2-layer MLP",
    benchmarks=BENCHMARKS,
    protocols=PROTOCOLS,
    metrics={"test_accuracy": "higher", "test_accuracy_std": "lower", "mean_steps": "lower"},
    ranges={"test_accuracy": (0, 1), "test_accuracy_std": (0, 1), "mean_steps": (0, math.inf)},
    override_fields=OVERRIDE_FIELDS,
    parse_overrides=parse_overrides,
    resolve_config=resolve_config,
    job_resources=job_resources,
    driver="optrepro.tasks.parity.driver",
    # sample_hidden_secrets(seed), the seeds make_dataset and each run's initialisation get, the mlsbench test seeds
    seed_fixes="the hidden secrets, the seed each secret's dataset and each run's initialisation are drawn from, "
               "and under mlsbench the test sets",
    leaderboard_id="optimization-parity",
    # the original's --smoke, with a dataset no larger than its steps read (a strategy that builds the largest
    # allowed one, 12.8 million rows, spent most of a 140 s check on it)
    check_overrides=(*(f"{field}={value}" for field, value in SMOKE_OVERRIDES.items()),
                     f"max_train_examples={SMOKE_OVERRIDES['max_steps'] * DEFAULT_TASK.batch_size}"),
    printed_decimals={"num_runs": 0},
    # A seed's test accuracy is the mean of its 15 runs (5 secrets × 3 orderings); FINAL_METRICS gives their spread.
    run_spread={"test_accuracy": ("test_accuracy_std", "num_runs")},
    strategy_functions=("init_model", "make_dataset", "get_optimizer_config"),
    # The original module's names its editable region saw (docs/tasks/parity.md); parity generates its data.
    original_names=("argparse", "json", "math", "random", "Path", "asdict", "dataclass", "replace", "torch", "nn",
                    "TaskConfig", "OptimizerConfig", "RunResult", "DEFAULT_TASK", "build_model", "set_global_seed",
                    "sample_hidden_secrets", "parity_labels", "make_test_set", "normalize_dataset",
                    "normalize_optimizer_config", "evaluate_accuracy", "maybe_log_final_window", "train_one_run",
                    "resolve_device", "maybe_apply_smoke_mode", "run_benchmark", "parse_args", "main"),
    figures=(FigureSpec(
        "accuracy_distribution", "Parity test-accuracy distribution",
        "Test accuracy of every inner run (secret × ordering, all seeds pooled) per strategy and benchmark; "
        "box: quartiles and median.", "optrepro.report.figures:accuracy_distribution"),),
)
