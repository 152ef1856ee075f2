"""The reference importer on logs written in the original benchmarks' formats (docs/tasks/*.md §9), the reference
file's checks, and the comparison of reference values with reproduced statistics."""

import math
from pathlib import Path

import pandas as pd
import pytest

from optrepro.configuration import load
from optrepro.metrics import format_calibration, format_epoch, format_final_results, format_line, format_model
from optrepro.report.reference import (
    COLUMNS,
    ReferenceError,
    compare,
    main,
    read_reference,
    reference_path,
    reference_values,
)
from optrepro.report.summarize import summarize
from optrepro.tasks import get

REPO = Path(__file__).resolve().parent.parent


def parity_log(accuracy):
    """One `scripts/eval*.sh` process as parity.md §9 prints it (2 secrets × 1 ordering for brevity)."""
    lines = ["TASK_CONFIG N=64 K=8 W=512 num_hidden_secrets=2 num_orderings=1 test_set_size=10000 batch_size=32 "
             "max_steps=30000"]
    for secret in range(2):
        lines.append(format_line("DATASET_METRICS", {"secret": secret, "num_examples": 4096, "positive_rate": 0.5}))
        lines += [format_line("TRAIN_METRICS", {"secret": secret, "order": 0, "step": step, "loss": 0.6, "acc": 0.7})
                  for step in (1, 250)]
        lines.append(format_line("RUN_METRICS", {"secret": secret, "order": 0, "steps": 250,
                                                 "test_accuracy": accuracy}))
    lines.append(format_line("FINAL_METRICS", {"test_accuracy": accuracy, "score": accuracy, "test_accuracy_std": 0.0,
                                               "mean_steps": 250.0, "num_runs": 2}))
    lines.append(format_line("TEST_METRICS", {"test_accuracy": accuracy, "score": accuracy}))
    return "\n".join(lines) + "\n"


def dpsgd_log():
    """The original DP-SGD driver's stdout (dpsgd.md §9): free-form lines and TEST_METRICS, no FINAL_METRICS."""
    return "\n".join([
        format_calibration(0.2385, 3.0, 1e-05, 1170, 0.0042667), format_model("MNISTNet", 26010),
        format_line("TRAIN_METRICS", {"epoch": 1, "step": 50, "loss": 1.2, "accuracy": 61.25}, {"accuracy": 2}),
        format_epoch(1, 5, 0.8123, 75.5, 0.5012, 85.25, 1.31, 0.2385), "",
        format_line("TEST_METRICS", {"accuracy": 95.1234, "epsilon": 3.0012, "best_accuracy": 95.5},
                    {"accuracy": 4, "epsilon": 4, "best_accuracy": 4}), "",
        format_final_results(95.1234, 95.5, 3.0012)]) + "\n"


def toy_log():
    lines = [format_line("TRAIN_METRICS", {"run": run, "step": 100 + run, "objective": 0.5, "residual": 1e-5,
                                           "projected_grad": 1e-6, "success": 1}) for run in range(1000)]
    lines.append(format_line("FINAL_METRICS", {"convergence_steps": 599.5, "median_steps": 600.0,
                                               "final_residual": 1e-5, "final_projected_grad": 1e-6,
                                               "success_rate": 1.0, "runtime_sec": 1.25, "score": 599.5}))
    return "\n".join(lines) + "\n"


def run_import(out, *args):
    return main(["import", "--source", "original benchmark, 3 seeds", "--out", str(out), *map(str, args)])


def test_import_parity_logs_reads_benchmark_and_seed_from_file_names(tmp_path):
    logs = []
    for name, accuracy in (("n64-k8_seed42.log", 0.953125), ("eval_n64-k8-seed123.out", 0.5)):
        logs.append(tmp_path / name)
        logs[-1].write_text(parity_log(accuracy))
    assert run_import(tmp_path / "ref.csv", "--task", "parity", "--strategy", "default", *logs) == 0
    assert (tmp_path / "ref.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    table = read_reference(tmp_path / "ref.csv")
    assert list(table.columns) == [*COLUMNS, "printed"]
    assert set(table.benchmark) == {"n64-k8"} and set(table.seed) == {"42", "123"}
    assert set(table.protocol) == {"mlsbench"} and set(table.source) == {"original benchmark, 3 seeds"}
    seed42 = table[table.seed == "42"].set_index("metric").value
    assert seed42.to_dict() == {"mean_steps": 250.0, "num_runs": 2, "score": 0.953125, "test_accuracy": 0.953125,
                                "test_accuracy_std": 0.0}


def test_import_toy_log_with_explicit_benchmark_and_seed(tmp_path):
    log = tmp_path / "toy.txt"
    log.write_text(toy_log())
    assert run_import(tmp_path / "ref.csv", "--task", "bilevel", "--strategy", "v_pbgd", "--protocol", "corrected",
                      "--benchmark", "toy-convergence", "--seed", "7", log) == 0
    table = read_reference(tmp_path / "ref.csv")
    assert len(table) == 7 and set(table.seed) == {"7"} and set(table.protocol) == {"corrected"}
    assert table.set_index("metric").value["convergence_steps"] == 599.5


def test_import_dpsgd_log_takes_its_test_metrics(tmp_path):
    log = tmp_path / "mnist_seed456.log"
    log.write_text(dpsgd_log())
    assert run_import(tmp_path / "ref.csv", "--task", "dpsgd", "--strategy", "standard_dpsgd", log) == 0
    table = read_reference(tmp_path / "ref.csv").set_index("metric")
    assert table.value.to_dict() == {"accuracy": 95.1234, "best_accuracy": 95.5, "epsilon": 3.0012}
    assert set(table.benchmark) == {"mnist"} and set(table.seed) == {"456"}


def test_a_second_import_replaces_only_its_own_rows(tmp_path):
    for name, accuracy in (("n32-k8_seed1.log", 0.6), ("n32-k8_seed2.log", 0.7)):
        (tmp_path / name).write_text(parity_log(accuracy))
    out = tmp_path / "ref.csv"
    assert run_import(out, "--task", "parity", "--strategy", "default", tmp_path / "n32-k8_seed1.log",
                      tmp_path / "n32-k8_seed2.log") == 0
    (tmp_path / "n32-k8_seed2.log").write_text(parity_log(0.9))
    assert run_import(out, "--task", "parity", "--strategy", "default", tmp_path / "n32-k8_seed2.log") == 0
    assert run_import(out, "--task", "parity", "--strategy", "other", tmp_path / "n32-k8_seed1.log") == 0
    table = read_reference(out)
    accuracy = table[table.metric == "test_accuracy"].set_index(["strategy", "seed"]).value
    assert accuracy.to_dict() == {("default", "1"): 0.6, ("default", "2"): 0.9, ("other", "1"): 0.6}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # written atomically


@pytest.mark.parametrize("args, text, message", [
    (["--task", "parity", "--strategy", "s"], parity_log(0.5), "no benchmark of task 'parity' in the file name"),
    (["--task", "parity", "--strategy", "s", "--benchmark", "n32-k8"], parity_log(0.5), "no seed in the file name"),
    (["--task", "parity", "--strategy", "s", "--benchmark", "n99", "--seed", "1"], parity_log(0.5),
     "'n99' is not a benchmark of task 'parity'"),
    (["--task", "nope", "--strategy", "s", "--benchmark", "b", "--seed", "1"], parity_log(0.5), "unknown task 'nope'"),
    (["--task", "parity", "--strategy", "s", "--benchmark", "n32-k8", "--seed", "1"], "Traceback ...\n",
     "no FINAL_METRICS or TEST_METRICS line"),
])
def test_import_errors_are_one_clear_line(tmp_path, capsys, args, text, message):
    log = tmp_path / "run.log"
    log.write_text(text)
    assert run_import(tmp_path / "ref.csv", *args, log) == 2
    err = capsys.readouterr().err
    assert err.startswith("ERROR: ") and message in err and not (tmp_path / "ref.csv").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.drop(columns=["source"]), "missing columns ['source']"),
    (lambda t: t.assign(value=["x", "0.5"]), "value is not a number on line(s) 2"),
    (lambda t: t.assign(seed=["42", "avg"]), "seed is not an integer or 'mean' on line(s) 3"),
])
def test_reference_file_checks(tmp_path, edit, message):
    table = pd.DataFrame([["parity", "n32-k8", "default", "mlsbench", "42", "test_accuracy", "0.9", "x"],
                          ["parity", "n32-k8", "default", "mlsbench", "mean", "test_accuracy", "0.5", "y"]],
                         columns=COLUMNS)
    edit(table).to_csv(tmp_path / "ref.csv", index=False)
    with pytest.raises(ReferenceError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        read_reference(tmp_path / "ref.csv")


def test_comparison_prefers_the_mean_row_and_checks_the_ci():
    reference = pd.DataFrame([
        ["parity", "n32-k8", "a", "mlsbench", "1", "test_accuracy", 0.1, "logs"],
        ["parity", "n32-k8", "a", "mlsbench", "mean", "test_accuracy", 0.92, "leaderboard"],
        ["parity", "n32-k8", "b", "mlsbench", "1", "test_accuracy", 0.5, "logs"],
        ["parity", "n32-k8", "b", "mlsbench", "2", "test_accuracy", 0.7, "logs"],
        ["parity", "n64-k8", "a", "mlsbench", "mean", "test_accuracy", 0.5, "paper"]], columns=COLUMNS)
    values = reference_values(reference).set_index(["benchmark", "strategy"])
    assert values.reference_value.to_dict() == {("n32-k8", "a"): 0.92, ("n32-k8", "b"): 0.6, ("n64-k8", "a"): 0.5}
    assert values.reference_seeds.to_dict() == {("n32-k8", "a"): "mean", ("n32-k8", "b"): "2", ("n64-k8", "a"): "mean"}
    runs = pd.DataFrame([{"task": "parity", "protocol": "mlsbench", "benchmark": "n32-k8", "strategy": s, "seed": i,
                          "scale": "quick", "status": "ok", "test_accuracy": v}
                         for s, values in (("a", [0.9, 0.94]), ("b", [0.9, 0.91, 0.92])) for i, v in enumerate(values)])
    table = compare(summarize(runs, {}), reference).set_index(["benchmark", "strategy"])
    assert table.loc[("n32-k8", "a"), "inside_ci"] and not table.loc[("n32-k8", "b"), "inside_ci"]
    assert table.loc[("n32-k8", "b"), "difference"] == pytest.approx(0.91 - 0.6)
    assert math.isnan(table.loc[("n64-k8", "a"), "mean"]) and pd.isna(table.loc[("n64-k8", "a"), "inside_ci"])


def test_the_shipped_reference_file_is_the_full_configurations_and_names_what_exists():
    """references/mlsbench.csv: the original's 533 published baseline values, every one naming a task, benchmark
    and shipped strategy of this checkout, under mlsbench, with its source; config/config.yaml points at it."""
    path = reference_path(load(REPO / "config/config.yaml"))
    assert path == Path("references/mlsbench.csv")  # relative to the working folder: the repository root here
    table = read_reference(REPO / path)
    assert len(table) == 533 and set(table["protocol"]) == {"mlsbench"}
    assert set(table["source"]) == {"MLS-Bench public leaderboard (website data, 2026-04)"}
    for (task, benchmark, strategy), _ in table.groupby(["task", "benchmark", "strategy"]):
        assert benchmark in get(task).benchmarks
        assert (REPO / "strategies" / task / f"{strategy}.py").is_file()
    toy = table[(table["benchmark"] == "toy-convergence") & (table["strategy"] == "v_pbgd")
                & (table["metric"] == "convergence_steps")].set_index("seed")["printed"]
    assert toy.to_dict() == {"42": "261.256", "123": "260.457", "456": "260.423", "mean": "260.712"}
