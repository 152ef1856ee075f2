"""The reference importer on logs written in the original benchmarks' formats (docs/tasks/*.md §9), the reference
file's checks, and the comparison of reference values with reproduced statistics."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from optrepro.configuration import load
from optrepro.metrics import format_calibration, format_epoch, format_final_results, format_line, format_model
from optrepro.report.reference import (
    COLUMNS,
    FAILED,
    MEAN,
    ReferenceError,
    compare,
    main,
    printed,
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
    assert table.set_index("metric").printed["convergence_steps"] == "599.500000"  # as the driver prints it


def test_import_dpsgd_log_takes_its_test_metrics(tmp_path):
    log = tmp_path / "mnist_seed456.log"
    log.write_text(dpsgd_log())
    assert run_import(tmp_path / "ref.csv", "--task", "dpsgd", "--strategy", "standard_dpsgd", log) == 0
    table = read_reference(tmp_path / "ref.csv").set_index("metric")
    assert table.value.to_dict() == {"accuracy": 95.1234, "best_accuracy": 95.5, "epsilon": 3.0012}
    assert table.printed["best_accuracy"] == "95.5000"
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
    (lambda t: t.assign(value=["x", "0.5"]), "value is not a number or 'failed' on line(s) 2"),
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


def test_the_shipped_reference_file_is_the_leaderboards_as_printed_with_its_failed_runs():
    """references/mlsbench.csv (references/README.md): the original's 621 published baseline values, every one
    naming a task, benchmark and shipped strategy of this checkout, under mlsbench, at its driver's decimals, the
    original's failed runs among them; config/config.yaml and config/quick.yaml point at it."""
    for config in ("config.yaml", "quick.yaml"):
        path = reference_path(load(REPO / "config" / config))
        assert path == Path("references/mlsbench.csv")  # relative to the working folder: the repository root here
    table = read_reference(REPO / path)
    assert len(table) == 621 and set(table["protocol"]) == {"mlsbench"} and MEAN not in set(table["seed"])
    assert {source.split(", ")[-1] for source in table["source"]} == {
        "optimization-parity.json", "optimization-bilevel.json", "optimization-dp-sgd.json"}
    for (task, benchmark, strategy), _ in table.groupby(["task", "benchmark", "strategy"]):
        assert benchmark in get(task).benchmarks
        assert (REPO / "strategies" / task / f"{strategy}.py").is_file()
    held = table[table["printed"] != FAILED]
    for row in held.itertuples():
        assert row.printed == printed(row.task, row.metric, row.value), row
    toy = held[(held["benchmark"] == "toy-convergence") & (held["strategy"] == "v_pbgd")].set_index(["metric", "seed"])
    assert toy.loc["convergence_steps", "printed"].to_dict() == {"42": "261.256000", "123": "260.457000",
                                                                 "456": "260.423000"}
    assert set(toy.loc["success_rate", "printed"]) == {"1.000000"}
    failed = table[table["printed"] == FAILED].groupby(["task", "benchmark", "strategy"])["seed"].unique()
    assert {key: sorted(seeds) for key, seeds in failed.items()} == {
        **{("parity", b, "multi_epoch"): ["123", "456"] for b in ("n32-k8", "n64-k8")},
        **{("bilevel", "hyperclean-mlp", s): ["123", "456"] for s in ("g_pbgd", "rhg", "t_rhg", "v_pbgd")}}
    assert not {"runtime_sec", "total_runtime_sec"} & set(table["metric"])


def leaderboard(task_id, columns, rows):
    """A file in the public leaderboard's shape: metric columns `<metric>_<benchmark>`, `elapsed_<benchmark>`."""
    return {"task_id": task_id, "columns": ["timestamp", "model", "is_final", "seed", *columns],
            "metric_columns": [c for c in columns if not c.startswith("elapsed_") and not c.endswith("_std")],
            "rows": [{"timestamp": "2026-04-04T00:00:00+00:00", "is_final": True, **row} for row in rows]}


def test_leaderboard_import_keeps_the_printed_precision_and_the_failed_runs(tmp_path):
    bilevel = leaderboard("optimization-bilevel", [
        "success_rate_toy_convergence", "runtime_sec_toy_convergence", "elapsed_toy-convergence",
        "test_accuracy_hyperclean_mlp", "f1_score_hyperclean_mlp", "elapsed_hyperclean-mlp",
        "test_accuracy_hyperclean_mlp_std"], [
        {"model": "baseline:v_pbgd", "seed": "42", "success_rate_toy_convergence": 1.0,
         "runtime_sec_toy_convergence": 0.69, "elapsed_toy-convergence": 7.0, "test_accuracy_hyperclean_mlp": 91.48,
         "f1_score_hyperclean_mlp": 80.1, "elapsed_hyperclean-mlp": 174.3},
        {"model": "baseline:v_pbgd", "seed": "123", "success_rate_toy_convergence": 1.0,
         "runtime_sec_toy_convergence": 0.7, "elapsed_toy-convergence": 7.0, "test_accuracy_hyperclean_mlp": None,
         "f1_score_hyperclean_mlp": None, "elapsed_hyperclean-mlp": 4.0},
        {"model": "baseline:v_pbgd", "seed": "mean", "success_rate_toy_convergence": 1.0,
         "test_accuracy_hyperclean_mlp": 91.48, "test_accuracy_hyperclean_mlp_std": 0.0},
        {"model": "agent:someone", "seed": "42", "success_rate_toy_convergence": 0.5}])
    dpsgd = leaderboard("optimization-dp-sgd", ["accuracy_mnist", "epsilon_mnist", "elapsed_mnist",
                                                "accuracy_cifar10", "elapsed_cifar10"],
                        [{"model": "baseline:standard_dpsgd", "seed": "42", "accuracy_mnist": 96.2,
                          "epsilon_mnist": 3.0016, "elapsed_mnist": 254.4}])
    files = []
    for name, board in (("optimization-bilevel.json", bilevel), ("optimization-dp-sgd.json", dpsgd)):
        files.append(tmp_path / name)
        files[-1].write_text(json.dumps(board))
    out = tmp_path / "ref.csv"
    assert main(["leaderboard", "--source", "leaderboard, commit abc", "--out", str(out), *map(str, files)]) == 0
    table = read_reference(out)
    printed_by = {(row.benchmark, row.seed, row.metric): row.printed for row in table.itertuples()}
    assert printed_by == {("toy-convergence", "42", "success_rate"): "1.000000",
                          ("toy-convergence", "123", "success_rate"): "1.000000",
                          ("hyperclean-mlp", "42", "test_accuracy"): "91.480000",
                          ("hyperclean-mlp", "42", "f1_score"): "80.100000",
                          ("hyperclean-mlp", "123", "test_accuracy"): FAILED,
                          ("hyperclean-mlp", "123", "f1_score"): FAILED,
                          ("mnist", "42", "accuracy"): "96.2000", ("mnist", "42", "epsilon"): "3.0016"}
    assert set(table["source"]) == {"leaderboard, commit abc, optimization-bilevel.json",
                                    "leaderboard, commit abc, optimization-dp-sgd.json"}
    assert table.loc[table["printed"] == FAILED, "value"].isna().all()  # cifar10: neither values nor a wall time


def test_a_leaderboard_of_an_unknown_task_is_one_clear_error(tmp_path, capsys):
    path = tmp_path / "other.json"
    path.write_text(json.dumps(leaderboard("optimization-nas", [], [])))
    assert main(["leaderboard", "--source", "x", "--out", str(tmp_path / "ref.csv"), str(path)]) == 2
    assert "task_id 'optimization-nas' is the leaderboard id of no registered task" in capsys.readouterr().err
    assert not (tmp_path / "ref.csv").exists()
