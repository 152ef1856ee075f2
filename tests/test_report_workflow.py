"""The report rules in the real Snakemake workflow, `snakemake --report`, and report-only regeneration
(`python -m optrepro.report.rebuild`, what `make report` runs) on run records written here (no training)."""

import json
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from test_collect import parity_log, toy_log, write_run

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parent.parent
SNAKEFILE = REPO / "workflow" / "Snakefile"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--cores", "1"]
REPORT_RULES = ["write_config", "list_runs", "collect", "summarize", "draw_figures", "render_report", "all"]
STRATEGIES = {"parity": ["default", "multi_epoch"], "bilevel": ["v_pbgd", "g_pbgd"]}
REFERENCE = ("task,benchmark,strategy,protocol,seed,metric,value,source\n"
             "parity,n32-k8,default,mlsbench,mean,test_accuracy,0.8,original leaderboard\n")


def write_records(workdir):
    """Records of every planned run, newer than the strategy files and driver sources (so nothing is retrained;
    --allowed-rules makes sure)."""
    rng = random.Random(1)
    for seed in (1, 2):
        for benchmark in ("n32-k8", "n50-k8"):
            for strategy, accuracy in (("default", 0.8), ("multi_epoch", 0.95)):
                lines, metrics = parity_log(accuracy + seed / 100)
                write_run(workdir, "parity", "mlsbench", benchmark, strategy, seed, metrics, lines)
        for strategy in STRATEGIES["bilevel"]:
            lines, metrics = toy_log(rng)
            write_run(workdir, "bilevel", "mlsbench", "toy-convergence", strategy, seed, metrics, lines)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("report-workflow")
    for task, names in STRATEGIES.items():
        (workdir / "strategies" / task).mkdir(parents=True)
        for name in names:
            (workdir / "strategies" / task / f"{name}.py").write_text("# never run here\n")
    (workdir / "reference.csv").write_text(REFERENCE)
    config = {"scale": "quick", "seeds": [1, 2], "strategy_dir": str(workdir / "strategies"),
              "report": {"reference_file": str(workdir / "reference.csv")},
              "tasks": {"parity": {"benchmarks": ["n32-k8", "n50-k8"], "protocols": ["mlsbench"],
                                   "strategies": STRATEGIES["parity"], "reference": "default"},
                        "bilevel": {"benchmarks": ["toy-convergence"], "protocols": ["mlsbench"],
                                    "strategies": STRATEGIES["bilevel"], "reference": "v_pbgd"}}}
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config))
    write_records(workdir)
    snakemake(workdir, "--allowed-rules", *REPORT_RULES)
    return workdir


def snakemake(workdir, *args):
    result = subprocess.run([*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(workdir / "tiny.yaml"),
                             *args], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def outputs(workdir):
    reports = workdir / "reports"
    return {path.relative_to(reports).as_posix(): path.read_bytes() for path in sorted(reports.rglob("*"))
            if path.is_file() and path.name != ".snakemake_timestamp"}  # Snakemake's mark on folder outputs


def test_the_rules_write_every_output(workdir):
    names = outputs(workdir)
    assert {"report.html", "report.md", "provenance.json", "config.json", "figures/figures.json"} <= set(names)
    assert {"tables/results-quick-parity-mlsbench-n32-k8.tex", "tables/ranking-quick-parity-mlsbench.tex",
            "tables/reference-quick-parity-mlsbench-n32-k8.tex",
            "tables/results-quick-bilevel-mlsbench-toy-convergence.tex"} <= set(names)
    assert {"figures/training_curves--quick.parity.mlsbench.n32-k8.pdf",
            "figures/step_distribution--quick.bilevel.mlsbench.png"} <= set(names)
    html = names["report.html"].decode()
    assert "original leaderboard" in html and "data:image/png;base64," in html
    assert json.loads(names["config.json"])["report"]["reference_file"].endswith("reference.csv")


def test_snakemake_report_shows_the_figures_with_captions_and_categories(workdir):
    snakemake(workdir, "--report", "snakemake-report.zip")
    with zipfile.ZipFile(workdir / "snakemake-report.zip") as archive:
        names = archive.namelist()
        text = "".join(archive.read(name).decode(errors="replace") for name in names
                       if name.endswith((".html", ".js", ".json")))
    assert any(name.endswith("training_curves--quick.parity.mlsbench.n32-k8.png") for name in names)
    assert any(name.endswith("summary.csv") for name in names)
    for category in ("Training curves", "Point estimates", "Bilevel toy step counts", "Tables", "Report"):
        assert category in text
    assert "one standard deviation over seeds" in text  # a figure caption


def test_rebuild_gives_the_same_report_without_snakemake(workdir):
    before = outputs(workdir)
    env = dict(os.environ)
    result = subprocess.run([sys.executable, "-m", "optrepro.report.rebuild", "--configfile", "tiny.yaml"],
                            cwd=workdir, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rebuilt the report from 12 of 12 planned runs" in result.stderr
    after = outputs(workdir)
    assert set(after) == set(before)
    for name in after:
        if name.endswith((".tex", ".json")) and name != "provenance.json" or name.endswith(".csv"):
            assert after[name] == before[name], name


def test_rebuild_lists_planned_runs_without_a_record(workdir):
    missing = workdir / "results/runs/parity/mlsbench/n50-k8/multi_epoch/seed2/record.json"
    missing.unlink()
    env = dict(os.environ)
    result = subprocess.run([sys.executable, "-m", "optrepro.report.rebuild", "--configfile", "tiny.yaml"],
                            cwd=workdir, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no record: results/runs/parity/mlsbench/n50-k8/multi_epoch/seed2" in result.stderr
    provenance = json.loads((workdir / "reports/provenance.json").read_text())
    assert provenance["missing_runs"] == ["results/runs/parity/mlsbench/n50-k8/multi_epoch/seed2"]
    assert "1 planned runs without a record" in (workdir / "reports/report.html").read_text()
