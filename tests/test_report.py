"""The report from hand-made runs: every table in HTML, Markdown and LaTeX, escaping of hostile names and errors,
best marks by direction, significance marks and notes, the power note, n=1, a task whose runs all failed, a missing
metric, mixed provenance, the reference comparison, and the CLI writing every output."""

import base64
import hashlib
import json
import math
import os
import re
import shutil
import subprocess

import pandas as pd
import pytest
from scipy import stats

from optrepro import configuration
from optrepro.report.reference import COLUMNS as REFERENCE_COLUMNS
from optrepro.report.render import BEST, EXPLORE_SCRIPT, main, render_report
from optrepro.report.summarize import summarize
from optrepro.report.tables import number

HOSTILE = "<script>alert(1)</script>"
TEX_HOSTILE = "x_&%$#{}~^\\y|*"
ERROR = "make_dataset raised ValueError: <b>x</b>"
ACCURACY = {"default": [0.91, 0.95, 0.93], "wide": [0.97, 0.99, 0.98], HOSTILE: [0.5, 0.52, 0.51],
            TEX_HOSTILE: [0.6, 0.62, 0.61]}
BENCHMARKS = ["n32-k8", "n50-k8"]
CONFIG = configuration.validate({"scale": "quick", "tasks": {
    "parity": {"benchmarks": BENCHMARKS, "reference": "default", "protocols": ["mlsbench", "corrected"]},
    "bilevel": {"benchmarks": ["toy-convergence"], "reference": "v_pbgd"}}})


def parity_config(scale):
    """A validated configuration of the parity benchmarks at `scale`."""
    return configuration.validate({"scale": scale, "tasks": {"parity": {"benchmarks": BENCHMARKS}}})


def run(benchmark, strategy, seed, accuracy=math.nan, error="", task="parity", protocol="mlsbench", **changes):
    return {"task": task, "protocol": protocol, "benchmark": benchmark, "strategy": strategy, "seed": seed,
            "scale": "quick", "status": "failed" if error else "ok", "error": error, "full_budget": False,
            "wall_seconds": 12.5,
            "device": "cpu", "device_name": changes.get("device_name", "x86_64"), "strategy_sha256": "a" * 64,
            "driver_sha256": "b" * 64, "data_sha256": "", "git_commit": "c" * 40, "git_dirty": True,
            "python": "3.11.7", "torch": changes.get("torch", "2.14.1"),
            "packages": f"numpy=2.4.6 torch={changes.get('torch', '2.14.1')}", "host": "node1", "start": "",
            "end": "", "run_dir": f"results/runs/{task}/{protocol}/{benchmark}/{strategy}/seed{seed}",
            "test_accuracy": accuracy, "test_accuracy_std": accuracy / 10,
            "mean_steps": math.nan if benchmark == "n50-k8" else 1500.0}


def make_runs():
    """Parity: 4 strategies × 3 seeds on two benchmarks (n50-k8 never prints mean_steps), a failed strategy with a
    hostile error, `wide` on n50-k8 with one seed on another GPU and torch; one seed under `corrected`;
    bilevel: every run failed."""
    rows = [run(benchmark, name, seed, accuracy=value,
                **({"device_name": "H100", "torch": "2.15.0"} if (benchmark, name, seed) == ("n50-k8", "wide", 3)
                   else {}))
            for benchmark in BENCHMARKS for name, values in ACCURACY.items()
            for seed, value in enumerate(values, start=1)]
    rows += [run("n32-k8", "broken", 1, error=ERROR), run("n32-k8", "default", 1, protocol="corrected", accuracy=0.9),
             run("toy-convergence", "v_pbgd", 1, task="bilevel", error="toy diverged"),
             run("toy-convergence", "v_pbgd", 2, task="bilevel", error="toy diverged")]
    return pd.DataFrame(rows)


def make_reference():
    rows = [("parity", "n32-k8", "default", "mlsbench", "mean", "test_accuracy", 0.93, "paper Table 1"),  # inside CI
            ("parity", "n32-k8", "wide", "mlsbench", "42", "test_accuracy", 0.90, "original logs"),  # outside CI
            ("parity", "n32-k8", "wide", "mlsbench", "123", "test_accuracy", 0.92, "original logs"),
            ("parity", "n32-k8", "default", "corrected", "mean", "test_accuracy", 0.8, "paper")]  # n=1
    return pd.DataFrame(rows, columns=REFERENCE_COLUMNS)


@pytest.fixture(scope="module")
def report():
    runs = make_runs()
    return render_report(runs, summarize(runs, {"parity": "default", "bilevel": "v_pbgd"}), CONFIG,
                         reference=make_reference())


@pytest.fixture(scope="module")
def html(report):
    return report.html


def section(text, heading, level="h2"):
    """The page between a heading and the next heading of the same level."""
    return text.split(heading, 1)[1].split(f"<{level}", 1)[0]


def caption_by_id(html, name):
    return html.split(f'id="{name}"', 1)[1].split("<table", 1)[0]


def table_by_id(html, name):
    """The table whose caption (above it) has the id, without the caption."""
    return html.split(f'id="{name}"', 1)[1].split("<table", 1)[1].split("</table>", 1)[0]


def test_a_results_table_per_task_protocol_benchmark(report, html):
    names = list(report.tex)  # LaTeX has one file per table of the page
    for benchmark in BENCHMARKS:
        assert f"results-quick-parity-mlsbench-{benchmark}" in names
        assert f"statistics-quick-parity-mlsbench-{benchmark}" in names
    assert {"results-quick-parity-corrected-n32-k8", "results-quick-bilevel-mlsbench-toy-convergence",
            "ranking-quick-parity-mlsbench", "profile-quick-parity-mlsbench",
            "reference-quick-parity-mlsbench-n32-k8", "reference-quick-parity-corrected-n32-k8"} <= set(names)
    for name in names:
        assert f'id="{name}"' in html
    # configuration order: parity before bilevel, mlsbench before corrected
    assert html.index('id="quick-parity-mlsbench"') < html.index('id="quick-parity-corrected"') < html.index(
        'id="quick-bilevel-mlsbench"')


def test_scale_label_and_counts(html):
    assert "Scale: quick — reduced budgets, not comparable with the paper" in html
    assert f"{len(make_runs())} runs: {len(make_runs()) - 3} ok, 3 failed." in html


def test_untrusted_text_is_escaped_in_html(html):
    """The page's one script is its own (sorting and filtering), allowed by its hash and by nothing else."""
    assert html.count("<script>") == 1 and f"<script>{EXPLORE_SCRIPT}</script>" in html and "<b>x</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "make_dataset raised ValueError: &lt;b&gt;x&lt;/b&gt;" in html
    digest = base64.b64encode(hashlib.sha256(EXPLORE_SCRIPT.encode()).digest()).decode()
    assert (f'content="default-src \'none\'; img-src data:; style-src \'unsafe-inline\'; '
            f"script-src 'sha256-{digest}'\"") in html


def test_untrusted_text_is_escaped_in_markdown(report):
    markdown = report.markdown
    assert "<script>" not in markdown and "<b>x</b>" not in markdown
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt;" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| x\\_")]
    assert rows and all(line.count("|") - line.count("\\|") == 6 for line in rows[:1])  # strategy, n, 3 metrics
    assert "x\\_&amp;%$\\#\\{\\}\\~^\\\\y\\|\\*" in markdown


def test_best_mean_by_direction(html):
    table = table_by_id(html, "results-quick-parity-mlsbench-n32-k8")
    best = re.findall(rf'<span class="best">{BEST} ([^<]*)</span>', table)
    # wide has the highest test_accuracy; the hostile strategy the lowest test_accuracy_std (lower is better);
    # mean_steps: all tie, so none is marked
    assert sorted(best) == [f"{number(0.051)} ± {number(0.001)}", f"{number(0.98)} ± {number(0.01)}"]
    ranking = table_by_id(html, "ranking-quick-parity-mlsbench")
    assert ranking.index("<code>wide</code>") < ranking.index("<code>default</code>")


def test_comparison_note_mark_and_power_note(html):
    """wide − default is +0.06, +0.04, +0.05 by seed: a paired t-test, p = 0.013; Holm over the table's six
    p-values (three strategies × test_accuracy and its std; mean_steps ties) keeps it below 0.05."""
    table = table_by_id(html, "results-quick-parity-mlsbench-n32-k8")
    wide = table.split("<code>wide</code>")[1].split("</tr>")[0]
    paired = stats.ttest_rel(ACCURACY["wide"], ACCURACY["default"])
    interval = paired.confidence_interval(0.95)
    note = (f"Δ +0.05 [{number(interval.low, signed=True)}, {number(interval.high, signed=True)}], "
            f"paired t p={paired.pvalue:.3f}, Holm p=")
    assert "<sup>*</sup>" in wide and note in wide
    caption = caption_by_id(html, "results-quick-parity-mlsbench-n32-k8")
    assert "after Holm&#39;s adjustment across this benchmark&#39;s 6 comparisons" in caption
    power = re.search(r"Power: a paired t test over 3 seeds finds a true difference in test_accuracy of ([0-9.]+) "
                      r"with 80% power at α = 0.05 \(this table&#39;s median std of the per-seed differences, "
                      r"([0-9.]+)\), and of ([0-9.]+) at Holm&#39;s first step \(α = 0.05/6\)", caption)
    assert power and float(power[2]) == pytest.approx(0.01, abs=5e-5)
    assert float(power[1]) == pytest.approx(3.26 * 0.01, abs=1e-3)  # d = 3.26 standard deviations for 3 pairs
    assert float(power[3]) > float(power[1])
    default = table.split("<code>default</code>")[1].split("</tr>")[0]
    assert "<sup>" not in default and "Δ" not in default and "(reference)" in default


def test_one_seed_says_no_ci(html):
    corrected = table_by_id(html, "results-quick-parity-corrected-n32-k8")
    assert "n=1: no CI" in corrected and "±" not in corrected


def test_a_task_whose_runs_all_failed(html):
    table = table_by_id(html, "results-quick-bilevel-mlsbench-toy-convergence")
    assert table.count('failed">FAILED') >= 1 and "+2 failed" in table
    failed = section(html, '<h2 id="failed-runs">')
    assert failed.count("toy diverged") == 2 and "&lt;b&gt;x&lt;/b&gt;" in failed


def test_a_metric_no_run_printed_is_not_a_column(html):
    assert "mean_steps ↓" in table_by_id(html, "results-quick-parity-mlsbench-n32-k8")
    assert "mean_steps" not in table_by_id(html, "results-quick-parity-mlsbench-n50-k8")


def test_mixed_provenance_is_flagged_on_the_cell(report, html):
    table = table_by_id(html, "results-quick-parity-mlsbench-n50-k8")
    warned = [row for row in table.split("<tr")[1:] if "warned" in row.split(">")[0]]
    assert len(warned) == 1 and "<code>wide</code>" in warned[0]
    assert "runs disagree on package versions (2 values); device model (2 values)" in warned[0]
    assert "⚠" not in table_by_id(html, "results-quick-parity-mlsbench-n32-k8")
    provenance = section(html, '<h2 id="provenance">')
    assert "device_name: H100 | x86_64" in provenance
    cells = [c for c in report.provenance["cells"] if c["warning"]]
    assert [(c["benchmark"], c["strategy"]) for c in cells] == [("n50-k8", "wide")]
    assert cells[0]["differences"]["packages"] == ["numpy=2.4.6 torch=2.14.1", "numpy=2.4.6 torch=2.15.0"]
    assert "$^\\dagger$" in report.tex["results-quick-parity-mlsbench-n50-k8"]


def test_reference_comparison(html):
    table = table_by_id(html, "reference-quick-parity-mlsbench-n32-k8")
    rows = table.split("<tr")[2:]
    default = next(row for row in rows if "<code>default</code>" in row)
    wide = next(row for row in rows if "<code>wide</code>" in row)
    assert ">yes<" in default and "paper Table 1" in default and number(0.93 - 0.93, signed=True) in default
    assert 'class="failed">no<' in wide and ">2<" in wide and number(0.98 - 0.91, signed=True) in wide
    one_seed = table_by_id(html, "reference-quick-parity-corrected-n32-k8")
    assert "— (n &lt; 2)" in one_seed and number(0.1, signed=True) in one_seed


def test_provenance_record(report):
    record = json.loads(json.dumps(report.provenance))  # plain JSON types only
    assert len(record["cells"]) == len(make_runs().groupby(["task", "protocol", "benchmark", "strategy"]))
    assert sum(len(cell["runs"]) for cell in record["cells"]) == len(make_runs())
    assert {run["error"] for run in record["failed_runs"]} == {ERROR, "toy diverged"}
    assert record["config"] == CONFIG and record["missing_runs"] == []


def check_tex_structure(name, text):
    columns = re.search(r"\\begin\{tabular\}\{([lr]+)\}", text).group(1)
    body = text.split("\\midrule\n", 1)[1].split("\\bottomrule", 1)[0]
    for line in [text.split("\\toprule\n", 1)[1].split("\\midrule", 1)[0], *body.strip().splitlines()]:
        cells = re.split(r"(?<!\\)&", line.strip().removesuffix("\\\\"))
        assert len(cells) == len(columns), (name, line)
    assert text.count("\\toprule") == text.count("\\midrule") == text.count("\\bottomrule") == 1
    assert f"\\label{{tab:{name}}}" in text and "<script>" not in text


def test_latex_tables_are_booktabs_and_escaped(report):
    assert len(report.tex) >= 12
    for name, text in report.tex.items():
        check_tex_structure(name, text)
    n32 = report.tex["results-quick-parity-mlsbench-n32-k8"]
    assert "x\\_\\&\\%\\$\\#\\{\\}\\textasciitilde{}\\textasciicircum{}\\textbackslash{}y|*" in n32
    assert "\\textless{}script\\textgreater{}" in n32 and "\\textbf{" in n32 and "$^{*}$" in n32


@pytest.mark.skipif(shutil.which("pdflatex") is None and not os.environ.get("CI"),  # .ci/run installs it
                    reason="no TeX engine here: tables checked structurally only")
def test_latex_tables_compile(report, tmp_path):
    for name, text in report.tex.items():
        (tmp_path / f"{name}.tex").write_text(text)
    inputs = "".join(f"\\input{{{name}.tex}}\n\\clearpage\n" for name in report.tex)
    (tmp_path / "all.tex").write_text("\\documentclass{article}\n\\usepackage{booktabs}\n"
                                      "\\usepackage[margin=1cm,landscape]{geometry}\n\\begin{document}\n"
                                      f"{inputs}\\end{{document}}\n")
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "all.tex"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / "all.pdf").stat().st_size > 0
    assert "Missing character" not in (tmp_path / "all.log").read_text(errors="replace")


def test_no_failures_and_no_reference_says_so():
    runs = make_runs()
    ok = runs[(runs.status == "ok") & (runs.task == "parity")]
    html = render_report(ok, summarize(ok, {}), parity_config("full")).html
    assert "No run failed." in html and "Scale: full" in html and "FAILED" not in html
    assert "Δ +" not in html and "Δ -" not in html and "</span><sup>*</sup>" not in html
    assert "reference-" not in html


def test_cli_writes_every_output(tmp_path):
    runs = make_runs()
    runs.to_csv(tmp_path / "runs.csv", index=False)
    summarize(runs, {"parity": "default"}).to_csv(tmp_path / "summary.csv", index=False)
    make_reference().to_csv(tmp_path / "reference.csv", index=False)
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    figures = tmp_path / "reports" / "figures"
    figures.mkdir(parents=True)
    (figures / "figures.json").write_text("[]")
    out = tmp_path / "reports"
    assert main(["--runs", str(tmp_path / "runs.csv"), "--summary", str(tmp_path / "summary.csv"),
                 "--figures", str(figures), "--config", str(tmp_path / "config.json"),
                 "--reference", str(tmp_path / "reference.csv"), "--html", str(out / "report.html"),
                 "--markdown", str(out / "report.md"), "--tables", str(out / "tables"),
                 "--provenance", str(out / "provenance.json")]) == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert HOSTILE not in page and "(reference)" in page and "http" not in page.split("</style>")[1]
    assert sorted(p.name for p in out.iterdir()) == ["figures", "provenance.json", "report.html", "report.md",
                                                     "tables"]  # no temporary file left
    assert len(list((out / "tables").glob("*.tex"))) >= 12
    assert json.loads((out / "provenance.json").read_text())["config"] == CONFIG


def test_no_runs_at_all():
    from optrepro.collect import collect

    runs, _ = collect([])
    report = render_report(runs, summarize(runs, {}), parity_config("quick"))
    assert "No results." in report.html and "No results." in report.markdown and report.tex == {}


def test_a_cells_run_notes_are_shown_with_their_seeds():
    from optrepro.report.lineage import cell_warnings

    cut = "secret 0: dataset cut from 3840000 to 512000 rows by the scale's row cap"
    rows = [{**run("n32-k8", "cube", seed, accuracy=0.9), "notes": cut if seed < 3 else ""} for seed in (1, 2, 3)]
    rows += [{**run("n32-k8", "default", 1, accuracy=0.9), "notes": ""}]
    warnings = cell_warnings(pd.DataFrame(rows))
    assert warnings == {("parity", "mlsbench", "n32-k8", "cube", "quick"): f"{cut} (seed 1, 2)"}


def test_the_report_opens_with_the_reproduction_summary_and_the_corrections(report, html):
    """Quick-scale runs are never judged against the (full-scale) references; benchmarks run under both
    protocols get the rankings side by side."""
    headings = re.findall(r'<h2 id="([^"]+)"', html)
    assert headings[:4] == ["reproduction", "corrections", "quick-parity-mlsbench", "quick-parity-corrected"]
    summary = section(html, '<h2 id="reproduction">')
    assert "0 of 3 baseline cells reproduced (3 scale differs)." in summary
    assert "our runs are below the benchmark&#39;s own budget (scale quick)" in table_by_id(html, "reproduction-parity")
    corrections = section(html, '<h2 id="corrections">')
    assert "parity n32-k8: τ undefined (1 strategy ranked under both protocols)" in corrections
    assert "0 of 0 comparisons with a task" in corrections
    assert "every conclusion holds under both" in corrections
    assert "protocols-quick-parity-n32-k8" in report.tex
    assert "## Reproduction summary" in report.markdown and "0 of 3 baseline cells reproduced" in report.markdown


def test_cli_refuses_tables_of_another_plan_and_lists_what_the_plan_left_out(tmp_path, capsys):
    """The report is rendered only from the tables of the current plan; the plan's warnings (strategy files with
    invalid names) are listed in the report."""
    runs = make_runs()
    runs.to_csv(tmp_path / "runs.csv", index=False)
    summarize(runs, {"parity": "default"}).to_csv(tmp_path / "summary.csv", index=False)
    warning = f"strategies/parity/{HOSTILE}.py: skipped, not a valid strategy name"
    (tmp_path / "config.json").write_text(json.dumps({**CONFIG, "plan_warnings": [warning]}))
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "figures.json").write_text("[]")
    args = ["--runs", str(tmp_path / "runs.csv"), "--summary", str(tmp_path / "summary.csv"), "--figures",
            str(figures), "--config", str(tmp_path / "config.json"), "--html", str(tmp_path / "r.html"),
            "--markdown", str(tmp_path / "r.md"), "--tables", str(tmp_path / "tables"), "--provenance",
            str(tmp_path / "p.json"), "--run-list", str(tmp_path / "run_dirs.txt")]
    (tmp_path / "run_dirs.txt").write_text("".join(f"{d}\n" for d in runs["run_dir"][:-1]) + "results/runs/new\n")
    assert main(args) == 2
    assert capsys.readouterr().err.strip().endswith("the tables are not those of the current plan (1 planned runs "
                                                    "missing, 1 not planned); collect again")
    assert not (tmp_path / "r.html").exists()
    (tmp_path / "run_dirs.txt").write_text("".join(f"{d}\n" for d in runs["run_dir"]))
    assert main(args) == 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Left out of the plan" in page and HOSTILE not in page and "skipped, not a valid strategy name" in page
    assert "plan_warnings" not in json.dumps(json.loads((tmp_path / "p.json").read_text())["config"])
