"""The METRICS protocol: every line kind of the three tasks round-trips byte for byte."""

import math

import pytest

from optrepro.metrics import (
    divergence,
    final_metrics,
    format_calibration,
    format_epoch,
    format_final_results,
    format_line,
    format_model,
    parse_line,
    parse_log,
    truncations,
)

# Lines in the original benchmarks' formats (docs/tasks/*.md), one per kind.
ORIGINAL_LINES = [
    "TASK_CONFIG N=32 K=8 W=512 num_hidden_secrets=5 num_orderings=3 test_set_size=16384 batch_size=128 "
    "max_steps=30000",
    "DATASET_METRICS secret=0 num_examples=12800000 positive_rate=0.500012",
    "TRAIN_METRICS secret=0 order=2 step=250 loss=0.693147 acc=0.501234",
    "RUN_METRICS secret=4 order=2 steps=1750 test_accuracy=1.000000",
    "FINAL_METRICS test_accuracy=0.812345 score=0.812345 test_accuracy_std=0.100000 mean_steps=21000.000000 "
    "num_runs=15",
    "TEST_METRICS test_accuracy=0.812345 score=0.812345",
    "TRAIN_METRICS run=7 step=120 objective=nan residual=inf projected_grad=0.000009 success=1",
    "TRAIN_METRICS step=10 train_loss=1.234567 val_loss=2.345678 test_accuracy=0.876 f1_score=0.543 "
    "cleaner_precision=0.600000 cleaner_recall=0.700000 penalty_gap=0.001000 iter_time=0.010000",
    "RUN_METRICS run=1 seed=43 test_accuracy=0.900000 f1_score=0.800000 best_f1_f1_score=0.810000",
    "TRAIN_METRICS epoch=3 step=500 loss=0.412345 accuracy=88.12",
    "TEST_METRICS accuracy=97.1234 epsilon=3.0000 best_accuracy=97.2000",
]


@pytest.mark.parametrize("line", ORIGINAL_LINES)
def test_key_value_lines_round_trip(line):
    parsed = parse_line(line)
    assert parsed is not None and parsed.kind == line.split()[0]
    decimals = {key: len(text.split("=")[1].split(".")[1]) for key, text in
                ((t.split("=")[0], t) for t in line.split()[1:]) if "." in text}
    assert format_line(parsed.kind, parsed.fields, decimals) == line


def test_values_are_typed():
    fields = parse_line(ORIGINAL_LINES[6]).fields
    assert fields["run"] == 7 and isinstance(fields["run"], int)
    assert math.isnan(fields["objective"]) and fields["residual"] == math.inf


def test_format_line_uses_six_decimals_and_plain_ints():
    line = format_line("RUN_METRICS", {"secret": 1, "order": 0, "steps": 30000, "test_accuracy": 0.5})
    assert line == "RUN_METRICS secret=1 order=0 steps=30000 test_accuracy=0.500000"


def test_dpsgd_free_form_lines_round_trip():
    lines = [
        format_calibration(0.23851, 3.0, 1e-5, 1170, 256 / 60000),
        format_model("MNISTNet", 26010),
        format_epoch(2, 5, 0.41234, 88.123, 0.3, 90.5, 1.234, 0.2385),
        format_final_results(97.12, 97.2, 2.999),
    ]
    assert lines == [
        "Calibrated noise_multiplier sigma=0.2385 for epsilon=3.0, delta=1e-05, steps=1170, q=0.0043",
        "Model: MNISTNet, Parameters: 26010",
        "Epoch 2/5: train_loss=0.4123 train_acc=88.12% test_loss=0.3000 test_acc=90.50% epsilon_spent=1.23 "
        "sigma=0.2385",
        "Final Results: accuracy=97.12%, best_accuracy=97.20%, epsilon=3.00",
    ]
    kinds = [parse_line(line) for line in lines]
    assert [k.kind for k in kinds] == ["CALIBRATION", "MODEL", "EPOCH", "FINAL_RESULTS"]
    assert kinds[0].fields == {"sigma": 0.2385, "epsilon": 3.0, "delta": 1e-05, "steps": 1170, "q": 0.0043}
    assert kinds[1].fields == {"model": "MNISTNet", "n_params": 26010}
    assert kinds[2].fields["epoch"] == 2 and kinds[2].fields["train_acc"] == 88.12
    assert kinds[3].fields == {"accuracy": 97.12, "best_accuracy": 97.2, "epsilon": 3.0}


def test_parse_log_skips_other_lines_and_final_metrics_prefers_final():
    text = "\n".join(["some warning", *ORIGINAL_LINES[:6], ""])
    parsed = parse_log(text)
    assert len(parsed) == 6
    assert final_metrics(parsed)["num_runs"] == 15
    assert final_metrics(parse_log(ORIGINAL_LINES[-1]))["epsilon"] == 3.0
    assert final_metrics(parse_log("nothing here")) == {}


@pytest.mark.parametrize("text, expected", [
    ("TRAIN_METRICS secret=0 order=1 step=250 loss=0.5 acc=0.5\nFINAL_METRICS score=0.5", None),
    ("TRAIN_METRICS secret=1 order=2 step=250 loss=inf acc=0.5\nFINAL_METRICS score=0.5",
     "diverged: loss inf at step 250 (secret 1, order 2)"),
    ("TRAIN_METRICS step=10 train_loss=0.1 val_loss=nan test_accuracy=9.8", "diverged: val_loss nan at step 10"),
    ("Epoch 2/5: train_loss=nan train_acc=9.80% test_loss=nan test_acc=9.80% epsilon_spent=1.00 sigma=1.0000",
     "diverged: train_loss nan at epoch 2"),
    ("TRAIN_METRICS run=3 step=5 objective=nan residual=inf projected_grad=inf success=0\nFINAL_METRICS score=1.0",
     None),  # the toy's objective is not a loss: NaN before a start's first step is its defined value
    ("FINAL_METRICS test_accuracy=0.5 score=nan", "diverged: final score is nan"),
])
def test_divergence_is_a_non_finite_loss_or_score(text, expected):
    assert divergence(parse_log(text)) == expected


def test_truncated_datasets_become_notes():
    log = ("DATASET_METRICS secret=0 num_examples=512000 positive_rate=0.5 truncated_from=3840000\n"
           "DATASET_METRICS secret=1 num_examples=4000 positive_rate=0.5")
    assert truncations(parse_log(log)) == ["secret 0: dataset cut from 3840000 to 512000 rows by the scale's row cap"]
