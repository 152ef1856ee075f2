"""The HTML report from hand-made tables: every table, failures and their reasons, escaping, best marks, scale."""

import json
import math

import pandas as pd
import pytest

from optrepro.report.render import BEST, main, number, render_report
from optrepro.report.summarize import summarize

HOSTILE = "<script>alert(1)</script>"
ERROR = "make_dataset raised ValueError: <b>x</b>"
ACCURACY = {"default": [0.91, 0.95, 0.93], "wide": [0.97, 0.99, 0.98]}
BENCHMARKS = ["n32-k8", "n50-k8"]


def run(benchmark, strategy, seed, accuracy=math.nan, error=""):
    return {"task": "parity", "protocol": "mlsbench", "benchmark": benchmark, "strategy": strategy, "seed": seed,
            "scale": "quick", "status": "failed" if error else "ok", "error": error, "wall_seconds": 12.5,
            "device": "cpu", "device_name": "x86_64", "strategy_sha256": "a" * 64, "driver_sha256": "b" * 64,
            "data_sha256": "", "git_commit": "c" * 40, "git_dirty": True, "python": "3.11.7",
            "torch": "2.4.0", "host": "node1", "start": "", "end": "", "run_dir": "results/runs/x",
            "test_accuracy": accuracy, "test_accuracy_std": accuracy / 10, "mean_steps": 1500.0}


def make_runs():
    rows = [run(benchmark, name, seed, accuracy=value) for benchmark in BENCHMARKS
            for name, values in ACCURACY.items() for seed, value in enumerate(values, start=1)]
    return pd.DataFrame(rows + [run("n32-k8", HOSTILE, 1, error=ERROR)])


@pytest.fixture(scope="module")
def tables():
    runs = make_runs()
    return runs, summarize(runs, {"parity": "default"})


@pytest.fixture(scope="module")
def html(tables):
    return render_report(*tables, {"scale": "quick", "tasks": {"parity": {"reference": "default"}}})


def test_every_benchmark_has_a_table(html):
    for benchmark in BENCHMARKS:
        assert f"<h3>parity · mlsbench · {benchmark}</h3>" in html
    assert html.count("<h3>") == len(BENCHMARKS)


def test_scale_label_and_counts(html):
    assert "Scale: quick — reduced budgets, not comparable with the paper" in html
    assert "13 runs: 12 ok, 1 failed." in html


def test_untrusted_text_is_escaped(html):
    assert "<script>" not in html and "<b>x</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "make_dataset raised ValueError: &lt;b&gt;x&lt;/b&gt;" in html


def test_failed_cell_and_failed_runs_section(html):
    failed_section = html.split("<h2>Failed runs</h2>")[1].split("<h2>")[0]
    assert "&lt;b&gt;x&lt;/b&gt;" in failed_section and "No run failed" not in failed_section
    assert '<span class="failed">FAILED</span><span class="notes">1 failed</span>' in html


def test_best_mean_is_marked(html):
    best = f"<strong>{BEST} {number(0.98)} ± {number(0.01)}</strong>"  # wide's test_accuracy in each benchmark
    assert html.count(best) == len(BENCHMARKS)
    lowest_std = f"<strong>{BEST} {number(0.093)} ± {number(0.002)}</strong>"  # default's test_accuracy_std
    assert html.count(lowest_std) == len(BENCHMARKS)
    assert html.count(f"<strong>{BEST} ") == 2 * len(BENCHMARKS)  # mean_steps: all tie, so none is marked


def test_reference_row_and_delta(html):
    assert html.count('<tr class="reference">') == len(BENCHMARKS)
    assert "Δ vs default" in html and number(0.98 - 0.93, signed=True) in html


def test_provenance_and_configuration(html):
    provenance = html.split("<h2>Provenance</h2>")[1].split("<h2>")[0]
    assert provenance.count("<tr>") == 1 + len(make_runs())
    assert "aaaaaaaaaaaa</code>" in provenance and "a" * 13 not in provenance
    assert "cccccccccccc</code> (dirty)" in provenance and "<code>—</code>" in provenance
    assert '&#34;reference&#34;: &#34;default&#34;' in html


def test_no_failures_says_so(tables):
    runs, summary = tables
    ok = runs[runs.status == "ok"]
    html = render_report(ok, summarize(ok, {}), {"scale": "full"})
    assert "No run failed." in html and "Scale: full" in html and "FAILED" not in html and "Δ vs" not in html


def test_cli_writes_the_page(tmp_path, tables):
    runs, summary = tables
    runs.to_csv(tmp_path / "runs.csv", index=False)
    summary.to_csv(tmp_path / "summary.csv", index=False)
    (tmp_path / "config.json").write_text(json.dumps({"scale": "quick"}))
    out = tmp_path / "reports" / "report.html"
    assert main(["--runs", str(tmp_path / "runs.csv"), "--summary", str(tmp_path / "summary.csv"),
                 "--config", str(tmp_path / "config.json"), "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert HOSTILE not in page and "(reference)" in page and "http" not in page
    assert [path.name for path in out.parent.iterdir()] == ["report.html"]
