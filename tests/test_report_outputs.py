"""Every report output from a synthetic results tree of all three tasks (tests/test_collect.py writes it; no
training): figures as PDF and PNG with their manifest and one colour per strategy, and the page opened in headless
Chromium with every table and image present, saved as a screenshot."""

import base64
import hashlib
import html
import json
import math
import os
import re
import shutil
import subprocess

import matplotlib.colors
import pytest
from test_collect import write_results

from optrepro.collect import write_tables
from optrepro.configuration import validate
from optrepro.report import figures as figures_module
from optrepro.report.figures import palettes, read_manifest, write_figures
from optrepro.report.render import render_report, write_report
from optrepro.report.summarize import read_table, write_summary
from optrepro.tasks import get

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
REFERENCES = {"parity": "default", "bilevel": "paper_toy", "dpsgd": "standard_dpsgd"}
CONFIG = validate({"scale": "quick", "tasks": {task: {"benchmarks": list(get(task).benchmarks), "reference": strategy}
                                               for task, strategy in REFERENCES.items()}})


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """collect → summarize → figures → report, the workflow's steps."""
    root = tmp_path_factory.mktemp("outputs")
    run_dirs = write_results(root)
    write_tables(run_dirs, root / "tables/runs.csv", root / "tables/curves.csv")
    write_summary(root / "tables/runs.csv", root / "tables/summary.csv", REFERENCES)
    runs, curves, summary = (read_table(root / f"tables/{name}.csv") for name in ("runs", "curves", "summary"))
    reports = root / "reports"
    figures = write_figures(runs, curves, summary, None, reports / "figures")
    report = render_report(runs, summary, CONFIG, reports / "figures")
    write_report(report, reports / "report.html", reports / "report.md", reports / "tables",
                 reports / "provenance.json")
    return {"root": root, "reports": reports, "runs": runs, "figures": figures, "report": report}


def test_every_kind_of_figure_is_drawn(outputs):
    kinds = {(figure.kind, figure.task) for figure in outputs["figures"]}
    assert kinds == {("training_curves", "parity"), ("point_estimates", "parity"), ("performance_profiles", "parity"),
                     ("accuracy_distribution", "parity"), ("point_estimates", "bilevel"),
                     ("step_distribution", "bilevel"), ("training_curves", "dpsgd"), ("point_estimates", "dpsgd"),
                     ("performance_profiles", "dpsgd"), ("accuracy_vs_epsilon", "dpsgd")}
    # no figure for bilevel `corrected`, whose runs all failed, and none for the toy's per-start lines as a curve
    assert not [f for f in outputs["figures"] if f.protocol == "corrected" or f.kind == "training_curves"
                and f.task == "bilevel"]


def test_figures_are_pdf_and_png_at_paper_size(outputs):
    folder = outputs["reports"] / "figures"
    manifest = read_manifest(folder)
    assert manifest == outputs["figures"]
    names = {path.name for path in folder.iterdir()}
    assert names == {"figures.json"} | {f"{f.name}{suffix}" for f in manifest for suffix in (".pdf", ".png")}
    for figure in manifest:
        png = (folder / f"{figure.name}.png").read_bytes()
        width = int.from_bytes(png[16:20], "big")
        assert 300 <= width <= 6.75 * figures_module.PNG_DPI * 1.1, figure.name
        assert (folder / f"{figure.name}.pdf").read_bytes().startswith(b"%PDF")


def used_colours(figure):
    colours = set()
    for ax in figure.axes:
        colours |= {matplotlib.colors.to_hex(line.get_color()) for line in ax.get_lines()}
        for collection in ax.collections:
            colours |= {matplotlib.colors.to_hex(c) for c in collection.get_facecolors()}
    return colours


def test_a_strategy_has_one_colour_in_every_figure(outputs):
    runs = outputs["runs"]
    colours = palettes(runs)
    neutral = {"#000000", "#595959", "#4d4d4d", "#ffffff"}
    curves = read_table(outputs["root"] / "tables/curves.csv")
    summary = read_table(outputs["root"] / "tables/summary.csv")
    for info, figure in figures_module.draw_all(runs, curves, summary, None):
        if figure is None:
            continue
        allowed = {matplotlib.colors.to_hex(c) for c in colours[info.task].values()} | neutral
        assert used_colours(figure) <= allowed, info.name
        figures_module.plt.close(figure)
    assert colours["parity"]["default"] == palettes(runs[runs.strategy != "scaffold"])["parity"]["default"]


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),  # .ci/run installs it: never skipped there
                    reason="no Chromium (chromium, chromium-browser, google-chrome) on PATH")
def test_the_page_opens_in_headless_chromium(outputs, tmp_path):
    page = (outputs["reports"] / "report.html").read_text(encoding="utf-8")
    # A copy for the check only: the report itself allows no script (its Content-Security-Policy says so).
    probe = ('<script>addEventListener("load", () => { const images = [...document.images]; '
             'document.body.dataset.check = JSON.stringify({tables: document.querySelectorAll("table").length, '
             'images: images.length, decoded: images.filter(i => i.complete && i.naturalWidth > 0).length}); '
             '});</script></body>')
    check = tmp_path / "check.html"
    check.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page).replace("</body>", probe),
                     encoding="utf-8")
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--virtual-time-budget=15000"]
    dom = subprocess.run([*base, "--dump-dom", check.as_uri()], capture_output=True, text=True, timeout=600).stdout
    found = json.loads(re.search(r'data-check="([^"]*)"', dom).group(1).replace("&quot;", '"'))
    tables = len(outputs["report"].tex) + 2  # the failed runs and the provenance tables are not paper tables
    assert found == {"tables": tables, "images": len(outputs["figures"]), "decoded": len(outputs["figures"])}
    assert page.count("<table") == tables
    screenshot = tmp_path / "report.png"
    subprocess.run([*base, f"--screenshot={screenshot}", "--window-size=1280,2400",
                    (outputs["reports"] / "report.html").as_uri()], capture_output=True, timeout=600)
    assert screenshot.stat().st_size > 20_000
    print(f"screenshot: {screenshot}")


SORT_PROBE = """addEventListener("load", () => {
  const caption = document.getElementById("results-quick-parity-mlsbench-n32-k8");
  let block = caption;
  while (!block.matches(".scroll")) block = block.nextElementSibling;  // the caption, the filter, the table
  const table = block.querySelector("table");
  const column = (i) => [...table.tBodies[0].rows].filter((r) => !r.hidden).map((r) => r.cells[i].textContent.trim());
  const headers = table.tHead.rows[0].cells;
  const distinct = (i) => headers[i].dataset.numeric === "1" ? new Set(column(i)).size : 0;
  const numeric = [...headers].map((_, i) => i).reduce((best, i) => (distinct(i) > distinct(best) ? i : best), 0);
  const found = {filters: document.querySelectorAll("input.filter").length,
                 explorable: document.querySelectorAll("table[data-explore]").length, before: column(0)};
  headers[0].click(); found.ascending = column(0);
  headers[0].click(); found.descending = column(0);
  found.unsorted = column(numeric);
  headers[numeric].click(); found.numeric = column(numeric);
  const filter = table.closest(".scroll").previousElementSibling;
  filter.value = found.before[0]; filter.dispatchEvent(new Event("input"));
  found.filtered = column(0);
  filter.value = ""; filter.dispatchEvent(new Event("input"));
  found.cleared = column(0).length;
  document.body.dataset.check = JSON.stringify(found);
});"""


def first_number(text):
    match = re.search(r"[-−]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text, re.I)
    return float(match.group(0).replace("−", "-")) if match else math.inf


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),  # .ci/run installs it: never skipped there
                    reason="no Chromium (chromium, chromium-browser, google-chrome) on PATH")
def test_tables_sort_and_filter_in_headless_chromium_under_the_pages_policy(outputs, tmp_path):
    """The page's own script runs under its Content-Security-Policy (kept; only the probe's hash is added to it):
    a filter box above every table; a click on a header sorts by that column (text alphabetically, again:
    reversed; numbers by value), the filter hides the rows without its text, and clearing it shows them again."""
    page = (outputs["reports"] / "report.html").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(SORT_PROBE.encode()).digest()).decode()
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page).group(1)
    assert "script-src 'sha256-" in policy and "'unsafe-inline'" not in policy.split("script-src")[1]
    check = tmp_path / "check.html"
    check.write_text(page.replace(policy, f"{policy} 'sha256-{digest}'").replace(
        "</body>", f"<script>{SORT_PROBE}</script></body>"), encoding="utf-8")
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000",
                          "--dump-dom", check.as_uri()], capture_output=True, text=True, timeout=600).stdout
    found = json.loads(html.unescape(re.search(r'data-check="([^"]*)"', dom).group(1)))
    assert found["filters"] == found["explorable"] == page.count("<table data-explore>") > 5
    before = found["before"]
    assert len(before) >= 3 and found["ascending"] == sorted(before, key=str.lower)
    assert found["descending"] == sorted(before, key=str.lower, reverse=True)
    numbers = [first_number(text) for text in found["numeric"]]
    assert numbers == sorted(numbers) and len(set(numbers)) >= 3 and found["numeric"] != found["unsorted"]
    assert found["filtered"] == [name for name in before if before[0].lower() in name.lower()]
    assert len(found["filtered"]) < len(before) and found["cleared"] == len(before)
