"""Collect → summarize → figures → report on a synthetic plan of thousands of runs, timed per stage.

    python bench/report_scale.py --runs 3000 --compare 300

Writes run folders (record.json and run.log, with as many curve lines per run as the full-scale drivers
print: parity 15 runs × 30 steps, the toy's 1,000 starts, DP-SGD's batches and epochs, hyper-cleaning's
evaluations) for every task, benchmark, protocol and shipped strategy of config/config.yaml, with as many
seeds as it takes to reach --runs, then times the workflow's own steps on them, the same functions the rules
call. --compare repeats it at a smaller size and prints seconds per run side by side: a step whose cost per
run grows with the plan is superlinear.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from pathlib import Path

from optrepro import configuration, plan
from optrepro.collect import write_tables
from optrepro.metrics import format_epoch, format_final_results, format_line
from optrepro.report.figures import write_figures
from optrepro.report.reference import read_reference
from optrepro.report.render import render_report, write_report
from optrepro.report.summarize import config_references, read_table, write_summary

REPO = Path(__file__).resolve().parent.parent
STAGES = ("collect", "summarize", "figures", "report")


def log_lines(task: str, benchmark: str, rng: random.Random) -> tuple[list[str], dict[str, float]]:
    """A run.log as long as a full-scale run's, and its final metrics."""
    if task == "parity":
        lines = [format_line("TRAIN_METRICS", {"secret": s, "order": o, "step": step, "loss": rng.random()})
                 for s in range(5) for o in range(3) for step in range(0, 30000, 1000)]
        metrics = {"test_accuracy": rng.uniform(0.5, 1.0), "test_accuracy_std": rng.uniform(0, 0.2),
                   "mean_steps": rng.uniform(1000, 30000), "num_runs": 15}
        lines += [format_line("RUN_METRICS", {"run": r, "test_accuracy": rng.random()}) for r in range(15)]
        return lines + [format_line("FINAL_METRICS", metrics)], metrics
    if task == "bilevel" and benchmark == "toy-convergence":
        lines = [format_line("TRAIN_METRICS", {"run": r, "steps": rng.randint(100, 500),
                                               "residual": rng.random()}) for r in range(1000)]
        metrics = {"convergence_steps": rng.uniform(200, 400), "median_steps": 303.0, "success_rate": 1.0,
                   "final_projected_grad": 1e-5, "final_residual": rng.random()}
        return lines + [format_line("FINAL_METRICS", metrics)], metrics
    if task == "bilevel":
        lines = [format_line("TRAIN_METRICS", {"step": step, "loss": rng.random(), "test_accuracy": rng.random()})
                 for step in range(0, 40000, 800)]
        metrics = {"test_accuracy": rng.uniform(0.8, 0.9), "f1_score": rng.random(),
                   "cleaner_precision": rng.random(), "cleaner_recall": rng.random()}
        return lines + [format_line("FINAL_METRICS", metrics)], metrics
    lines = []
    for epoch in range(1, 6):
        lines += [format_line("TRAIN_METRICS", {"epoch": epoch, "step": step, "loss": rng.random(),
                                                "accuracy": rng.uniform(80, 99)}) for step in range(0, 234, 50)]
        lines.append(format_epoch(epoch, 5, rng.random(), 90.0, rng.random(), 95.0, 0.6 * epoch, 0.7))
    accuracy = rng.uniform(90, 98)
    metrics = {"accuracy": accuracy, "best_accuracy": accuracy, "epsilon": 3.0, "audit": "ok", "private": True}
    return lines + [format_final_results(accuracy, accuracy, 3.0)], metrics


def record(run: plan.PlannedRun, metrics: dict, scale: str) -> dict:
    """A record.json with every field collect reads."""
    return {"task": run.task, "benchmark": run.benchmark, "strategy": run.strategy, "seed": run.seed,
            "protocol": run.protocol, "scale": scale, "status": "ok", "error": None, "metrics": metrics,
            "notes": [], "hashes": {"strategy": "a" * 64, "driver": "b" * 64, "data": {}},
            "git": {"commit": "c" * 40, "dirty": False}, "wall_seconds": 1.0, "start": "", "end": "",
            "device": {"resolved": "cpu", "name": "x86_64"},
            "environment": {"python": "3.11.7", "packages": {"torch": "2.14.1"}, "host": "bench"}}


def synthetic_plan(runs: int) -> dict:
    """config/config.yaml with as many seeds as it takes to plan at least `runs` runs."""
    config = configuration.load(REPO / "config" / "config.yaml")
    config["strategy_dir"] = str(REPO / config["strategy_dir"])
    per_seed = len(plan.planned_runs(config)) // len(config["seeds"])
    config["seeds"] = list(range(math.ceil(runs / per_seed)))
    return config


def write_runs(config: dict, root: Path) -> list[Path]:
    rng = random.Random(0)
    folders = []
    for run in plan.planned_runs(config):
        folder = root / run.run_dir
        folder.mkdir(parents=True)
        lines, metrics = log_lines(run.task, run.benchmark, rng)
        (folder / "run.log").write_text("\n".join(lines) + "\n")
        (folder / "record.json").write_text(json.dumps(record(run, metrics, config["scale"])))
        folders.append(folder)
    return folders


def timed_stages(runs: int) -> tuple[int, dict[str, float]]:
    """Seconds of each of the workflow's report steps on a synthetic plan of at least `runs` runs."""
    config = synthetic_plan(runs)
    seconds = {}
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        folders = write_runs(config, root)
        tables, reports = root / "results" / "tables", root / "reports"
        started = time.perf_counter()
        write_tables(folders, tables / "runs.csv", tables / "curves.csv")
        seconds["collect"] = time.perf_counter() - started
        started = time.perf_counter()
        write_summary(tables / "runs.csv", tables / "summary.csv", config_references(config))
        seconds["summarize"] = time.perf_counter() - started
        run_table, curves, summary = (read_table(tables / f"{name}.csv") for name in ("runs", "curves", "summary"))
        reference = read_reference(REPO / config["report"]["reference_file"])
        started = time.perf_counter()
        write_figures(run_table, curves, summary, reference, reports / "figures")
        seconds["figures"] = time.perf_counter() - started
        started = time.perf_counter()
        report = render_report(run_table, summary, config, reports / "figures", reference)
        write_report(report, reports / "report.html", reports / "report.md", reports / "tables",
                     reports / "provenance.json")
        seconds["report"] = time.perf_counter() - started
    return len(folders), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000, help="size of the synthetic plan (at least)")
    parser.add_argument("--compare", type=int, default=300, help="a smaller plan timed beside it (0: none)")
    args = parser.parse_args()
    sizes = [size for size in (args.compare, args.runs) if size]
    results = [timed_stages(size) for size in sizes]
    print(f"{'step':<10}" + "".join(f"{f'{n} runs (s)':>16}{'ms/run':>9}" for n, _ in results)
          + ("   per-run ratio" if len(results) == 2 else ""))
    for stage in (*STAGES, "total"):
        cells, per_run = "", []
        for n, seconds in results:
            value = sum(seconds.values()) if stage == "total" else seconds[stage]
            per_run.append(value / n)
            cells += f"{value:>16.1f}{1000 * value / n:>9.2f}"
        print(f"{stage:<10}{cells}" + (f"{per_run[1] / per_run[0]:>16.2f}" if len(per_run) == 2 else ""))


if __name__ == "__main__":
    main()
