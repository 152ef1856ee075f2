"""collect: run folders written here in the drivers' formats (parity, the bilevel toy, DP-SGD) → runs.csv, curves.csv.

`write_run` and `write_results` also serve the other report tests (tests/test_report*.py) as fixtures:
synthetic records and logs, no training.
"""

import json
import math
import random

import pandas as pd
import pytest

from optrepro.collect import CURVE_COLUMNS, collect, main
from optrepro.metrics import format_epoch, format_line
from optrepro.report.summarize import read_table

PACKAGES = {"numpy": "2.4.6", "opacus": "1.6.0", "pandas": "3.1.1", "torch": "2.14.1"}


def record(task, protocol, benchmark, strategy, seed, metrics, error="", **changes):
    """A record.json as optrepro.runner writes it; `changes` replace provenance fields (strategy_sha256, device_name,
    torch) or give the run's scale overrides (overrides)."""
    packages = {**PACKAGES, "torch": changes.get("torch", PACKAGES["torch"])}
    return {
        "task": task, "benchmark": benchmark, "strategy": strategy, "seed": seed, "protocol": protocol,
        "scale": "quick", "status": "failed" if error else "ok", "error": error or None,
        "metrics": {} if error else metrics,
        "hashes": {"strategy": changes.get("strategy_sha256", "a" * 64), "driver": "b" * 64,
                   "data": {"resources/data/mnist/train.bin": "d" * 64} if task == "dpsgd" else {}},
        "config": {"workflow": {}, "overrides": changes.get("overrides", []), "task_config": None}, "command": [],
        "exit_status": 2 if error else 0,
        "git": {"commit": "c" * 40, "dirty": False},
        "environment": {"python": "3.11.7", "implementation": "CPython", "platform": "linux", "host": "node1",
                        "packages": packages},
        "device": {"requested": "auto", "resolved": "cpu", "name": changes.get("device_name", "x86_64"),
                   "cuda": None},
        "start": "2026-01-01T00:00:00+00:00", "end": "2026-01-01T00:01:00+00:00", "wall_seconds": 60.0,
        "strategy_path": f"strategies/{task}/{strategy}.py",
    }


def write_run(root, task, protocol, benchmark, strategy, seed, metrics, log_lines=(), error="", **changes):
    run_dir = root / "results" / "runs" / task / protocol / benchmark / strategy / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.log").write_text("".join(f"{line}\n" for line in log_lines))
    (run_dir / "record.json").write_text(json.dumps(record(task, protocol, benchmark, strategy, seed, metrics, error,
                                                          **changes)))
    return run_dir


def parity_log(accuracy, steps=(1, 250, 500)):
    lines = []
    for secret in range(2):
        for order in range(2):
            lines += [format_line("TRAIN_METRICS", {"secret": secret, "order": order, "step": step,
                                                    "loss": 1.0 / step, "acc": min(1.0, accuracy + step / 1e4)})
                      for step in steps]
            lines.append(format_line("RUN_METRICS", {"secret": secret, "order": order, "steps": steps[-1],
                                                     "test_accuracy": accuracy + 0.01 * (secret - order)}))
    metrics = {"test_accuracy": accuracy, "score": accuracy, "test_accuracy_std": 0.01, "mean_steps": 500.0,
               "num_runs": 4}
    return lines + [format_line("FINAL_METRICS", metrics)], metrics


def toy_log(rng, starts=50, budget=20000):
    lines, steps = [], []
    for run in range(starts):
        step = rng.choice([budget, int(rng.lognormvariate(6, 0.5)) + 1])
        steps.append(step)
        lines.append(format_line("TRAIN_METRICS", {"run": run, "step": step, "objective": 0.5, "residual": 1e-5,
                                                   "projected_grad": 1e-6, "success": int(step < budget)}))
    metrics = {"convergence_steps": sum(steps) / starts, "median_steps": float(sorted(steps)[starts // 2]),
               "final_residual": 1e-5, "final_projected_grad": 1e-6,
               "success_rate": sum(s < budget for s in steps) / starts, "runtime_sec": 0.5,
               "score": sum(steps) / starts}
    return lines + [format_line("FINAL_METRICS", metrics)], metrics


def dpsgd_log(accuracy, epsilon_rdp, audit, epochs=3):
    lines = []
    for epoch in range(1, epochs + 1):
        lines += [format_line("TRAIN_METRICS", {"epoch": epoch, "step": (epoch - 1) * 234 + batch, "loss": 2.0 / epoch,
                                                "accuracy": accuracy * epoch / epochs}, {"accuracy": 2})
                  for batch in (50, 100, 150, 200)]
        lines.append(format_epoch(epoch, epochs, 2.0 / epoch, accuracy * epoch / epochs, 1.9 / epoch,
                                  accuracy * epoch / epochs, 3.0 * epoch / epochs, 0.2385))
    metrics = {"score": accuracy, "accuracy": accuracy, "best_accuracy": accuracy + 0.5, "epsilon": 3.0,
               "epsilon_rdp": epsilon_rdp, "sigma": 0.2385, "audit": audit}
    return lines + [format_line("FINAL_METRICS", metrics)], metrics


def write_results(root, seeds=(42, 123, 456)):
    """A small results tree of all three tasks: two or three strategies × seeds, one failed run, one task × protocol
    whose runs all failed, a toy with 50 starts per run, DP-SGD with EPOCH lines and an `audit` verdict."""
    rng = random.Random(0)
    dirs = []
    for benchmark in ("n32-k8", "n50-k8"):
        for strategy, base in (("default", 0.80), ("multi_epoch", 0.95), ("scaffold", 0.60)):
            for i, seed in enumerate(seeds):
                lines, metrics = parity_log(base + 0.01 * i + (0.05 if benchmark == "n50-k8" else 0))
                dirs.append(write_run(root, "parity", "mlsbench", benchmark, strategy, seed, metrics, lines))
    dirs.append(write_run(root, "parity", "mlsbench", "n32-k8", "broken", 42, {}, error="make_dataset raised"))
    for strategy in ("paper_toy", "fast_toy"):
        for seed in seeds:
            lines, metrics = toy_log(rng)
            dirs.append(write_run(root, "bilevel", "mlsbench", "toy-convergence", strategy, seed, metrics, lines))
            dirs.append(write_run(root, "bilevel", "corrected", "toy-convergence", strategy, seed, {},
                                  error="toy diverged"))
    for benchmark, epsilon_rdp in (("mnist", 98.0), ("cifar10", 7.7)):
        for strategy, base, audit in (("standard_dpsgd", 90.0, "ok"), ("noise_decay", 92.0, "under-noised:0.50")):
            for i, seed in enumerate(seeds):
                lines, metrics = dpsgd_log(base + i - (30 if benchmark == "cifar10" else 0), epsilon_rdp + i,
                                           "data-dependent" if (strategy, i) == ("noise_decay", 2) else audit)
                dirs.append(write_run(root, "dpsgd", "mlsbench", benchmark, strategy, seed, metrics, lines))
    return dirs


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    return collect(write_results(tmp_path_factory.mktemp("collect")))


def test_one_row_per_run_with_provenance(tables):
    runs, _ = tables
    assert len(runs) == 2 * 3 * 3 + 1 + 2 * 3 * 2 + 2 * 2 * 3
    ok = runs[runs.status == "ok"]
    assert set(ok.packages) == {"numpy=2.4.6 opacus=1.6.0 pandas=3.1.1 torch=2.14.1"}
    assert (ok.torch == "2.14.1").all() and ok.strategy_sha256.str.len().eq(64).all()
    failed = runs[runs.status == "failed"]
    assert set(failed.error) == {"make_dataset raised", "toy diverged"}
    dpsgd = runs[runs.task == "dpsgd"]
    assert set(dpsgd.audit) == {"ok", "under-noised:0.50", "data-dependent"}
    assert dpsgd.data_sha256.str.len().eq(64).all() and (runs[runs.task == "parity"].data_sha256 == "").all()


def test_curves_hold_steps_epochs_runs_and_toy_starts(tables):
    _, curves = tables
    assert list(curves.columns) == CURVE_COLUMNS
    kinds = curves.groupby(["task", "kind"]).metric.agg(lambda m: sorted(set(m))).to_dict()
    assert kinds == {
        ("parity", "TRAIN_METRICS"): ["acc", "loss"], ("parity", "RUN_METRICS"): ["steps", "test_accuracy"],
        ("bilevel", "TRAIN_METRICS"): ["objective", "projected_grad", "residual", "success"],
        ("dpsgd", "TRAIN_METRICS"): ["accuracy", "loss"],
        ("dpsgd", "EPOCH"): ["epsilon_spent", "sigma", "test_acc", "test_loss", "train_acc", "train_loss"],
    }
    epochs = curves[curves.kind == "EPOCH"]
    assert set(epochs.epoch) == {1, 2, 3} and epochs.step.isna().all()
    toy = curves[(curves.task == "bilevel") & (curves.metric == "success")]
    assert len(toy) == 2 * 3 * 50 and toy.groupby(["strategy", "seed"]).run.nunique().eq(50).all()
    parity_runs = curves[(curves.kind == "RUN_METRICS") & (curves.metric == "test_accuracy")]
    assert len(parity_runs) == 2 * 3 * 3 * 4 and parity_runs.secret.notna().all()


def test_cli_writes_both_tables(tmp_path):
    dirs = write_results(tmp_path, seeds=(1,))
    out = tmp_path / "tables"
    assert main(["--runs", str(out / "runs.csv"), "--curves", str(out / "curves.csv"), *map(str, dirs)]) == 0
    runs = read_table(out / "runs.csv")
    assert len(runs) == len(dirs) and math.isclose(runs.loc[runs.task == "dpsgd", "epsilon"].iloc[0], 3.0)
    assert sorted(p.name for p in out.iterdir()) == ["curves.csv", "runs.csv"]
    assert len(pd.read_csv(out / "curves.csv")) > 0


def test_full_budget_is_per_run_whatever_the_scale_label(tmp_path):
    """A run is at its benchmark's own budget when its scale overrides change nothing for it: the bilevel cap of
    outer iterations leaves the toy whole and shortens hyper-cleaning; parity's step cap shortens it; a value equal
    to the default is no override; a task this checkout does not know counts only without overrides. The column
    survives runs.csv."""
    cases = {("bilevel", "toy-convergence", ("max_outer_itr=50",)): True,
             ("bilevel", "hyperclean-linear", ("max_outer_itr=50",)): False,
             ("parity", "n32-k8", ("max_steps=4000",)): False,
             ("parity", "n32-k8", ("max_steps=30000",)): True,
             ("dpsgd", "mnist", ()): True,
             ("dpsgd", "mnist", ("epochs=1",)): False,
             ("elsewhere", "b", ()): True,
             ("elsewhere", "b", ("steps=1",)): False}
    dirs = [write_run(tmp_path / str(i), task, "mlsbench", benchmark, "s", 42, {"x": 1.0}, overrides=list(items))
            for i, (task, benchmark, items) in enumerate(cases)]
    out = tmp_path / "tables"
    assert main(["--runs", str(out / "runs.csv"), "--curves", str(out / "curves.csv"), *map(str, dirs)]) == 0
    runs = read_table(out / "runs.csv")
    found = {key: bool(value) for key, value in zip(cases, runs.set_index("run_dir").loc[list(map(str, dirs)),
                                                                                        "full_budget"])}
    assert found == cases and runs["full_budget"].dtype == bool


def test_cli_takes_its_run_list_from_a_file(tmp_path):
    dirs = write_results(tmp_path, seeds=(1,))
    listing = tmp_path / "run_dirs.txt"
    listing.write_text("".join(f"{d}\n" for d in dirs[1:]))
    out = tmp_path / "tables"
    args = ["--runs", str(out / "runs.csv"), "--curves", str(out / "curves.csv"), "--run-list", str(listing)]
    assert main([*args, str(dirs[0])]) == 0
    assert len(read_table(out / "runs.csv")) == len(dirs)


def test_a_run_folder_that_cannot_be_read_is_that_runs_failed_row(tmp_path):
    """Whatever a run left behind, collect makes a table: a record that is not JSON, a folder where run.log
    should be, or metrics named like the table's own columns each fail that run alone, with the reason."""
    good = write_run(tmp_path, "parity", "mlsbench", "n32-k8", "good", 1, *reversed(parity_log(0.9)))
    garbage = write_run(tmp_path, "parity", "mlsbench", "n32-k8", "garbage", 2, {"test_accuracy": 1.0})
    (garbage / "record.json").write_text("{not json")
    folder = write_run(tmp_path, "parity", "mlsbench", "n32-k8", "folder", 3, {"test_accuracy": 1.0})
    (folder / "run.log").unlink()
    (folder / "run.log").mkdir()
    clash = write_run(tmp_path, "parity", "mlsbench", "n32-k8", "clash", 4, {"test_accuracy": 1.0, "status": "ok",
                                                                           "host": "elsewhere"})
    runs, curves = collect([good, garbage, folder, clash])
    rows = runs.set_index("strategy")
    assert rows.loc["good", "status"] == "ok" and len(curves[curves.strategy == "good"]) > 0
    assert rows.loc["garbage", "error"].startswith("unreadable run folder: JSONDecodeError: ")
    assert (rows.loc["garbage", "seed"], rows.loc["garbage", "benchmark"]) == (2, "n32-k8")
    assert rows.loc["folder", "error"].startswith("unreadable run folder: IsADirectoryError: ")
    assert rows.loc["clash", "error"] == "metric names that are runs.csv columns: host, status"
    assert rows.loc["clash", "host"] == "node1"  # the record's, not the run's
    assert set(rows.loc[["garbage", "folder", "clash"], "status"]) == {"failed"}
