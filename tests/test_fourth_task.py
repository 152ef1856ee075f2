"""A task kept outside the package, registered with one line (OPTREPRO_TASKS), goes through the whole workflow:
plan, train (the real runner, sandbox included), collect and report. The task file is docs/adding-a-task.md's
example, read from that page: gradient descent on a quadratic, with the step size the strategy's choice."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from optrepro import configuration, plan, tasks

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parent.parent
SNAKEFILE = REPO / "workflow" / "Snakefile"
TASK_FILE = (REPO / "docs" / "adding-a-task.md").read_text().split("```python\n", 1)[1].split("```", 1)[0]
STRATEGIES = {"small_step": "def get_step_size(config):\n    return 0.1\n",
              "large_step": "def get_step_size(config):\n    return 0.5\n",
              "broken": "def get_step_size(config):\n    return -1\n"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("fourth")
    (workdir / "fourth_task.py").write_text(TASK_FILE)
    for name, text in STRATEGIES.items():
        (workdir / "strategies" / "fourth").mkdir(parents=True, exist_ok=True)
        (workdir / "strategies" / "fourth" / f"{name}.py").write_text(text)
    config = {"scale": "tiny", "seeds": [1, 2], "device": "cpu", "strategy_dir": "strategies",
              "tasks": {"fourth": {"benchmarks": ["quad4", "quad16"], "reference": "small_step",
                                   "overrides": {"steps": 20}}}}
    (workdir / "fourth.yaml").write_text(yaml.safe_dump(config))
    return workdir


@pytest.fixture
def registered(workdir, monkeypatch):
    monkeypatch.setenv(tasks.TASKS_ENV, f"fourth={workdir / 'fourth_task.py'}")  # the one line
    monkeypatch.chdir(workdir)
    return workdir


def test_the_fourth_task_is_planned_like_the_others(registered):
    config = configuration.load("fourth.yaml")
    plan.check_config(config)
    runs = plan.planned_runs(config)
    assert {(run.benchmark, run.strategy) for run in runs} == {
        (benchmark, strategy) for benchmark in ("quad4", "quad16") for strategy in STRATEGIES}
    assert len(runs) == 2 * 3 * 2
    assert plan.time_limit(config, "fourth", "quad4", "mlsbench") == int(5 * 60 * plan.TIME_LIMIT_SHARE)
    assert str(registered / "fourth_task.py") in plan.driver_sources("fourth")  # editing it reruns its jobs
    by_hand = subprocess.run([sys.executable, "-m", "optrepro.tasks", "fourth", "--help"], capture_output=True,
                             text=True, timeout=300)
    assert by_hand.returncode == 0 and "get_step_size" in by_hand.stdout and "quad16" in by_hand.stdout


def test_the_fourth_task_goes_through_train_collect_and_report(registered):
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--cores", "2",
                             "--configfile", "fourth.yaml"], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = pd.read_csv("results/tables/runs.csv")
    assert len(runs) == 12 and set(runs.task) == {"fourth"}
    ok = runs[runs.status == "ok"]
    assert set(ok.strategy) == {"small_step", "large_step"}
    # the loss after t steps of size s is dim * 9 * (1 - s)^(2t) / 2: the larger step is ahead on every benchmark
    by_strategy = ok.groupby(["benchmark", "strategy"]).final_loss.mean().unstack()
    assert (by_strategy["large_step"] < by_strategy["small_step"]).all()
    failed = runs[runs.status == "failed"]
    assert set(failed.strategy) == {"broken"}
    assert failed.error.str.contains("get_step_size returned -1, expected a positive float").all()
    record = json.loads(next(Path("results/runs").rglob("record.json")).read_text())
    assert record["task"] == "fourth" and record["sandbox"] == "bwrap"  # the task file was readable inside
    curves = pd.read_csv("results/tables/curves.csv")
    assert set(curves[curves.metric == "loss"].step) == set(range(1, 21))
    html = Path("reports/report.html").read_text()
    assert "Gradient descent on a quadratic" in html and "large_step" in html
    assert "get_step_size returned -1" in html  # the failed runs and why
