"""The report in every form from the same tables: the `report` rule's script.

`python -m optrepro.report.render --runs runs.csv --summary summary.csv --figures reports/figures
--config config.json [--reference reference.csv] --html reports/report.html --markdown reports/report.md
--tables reports/tables --provenance reports/provenance.json`

* report.html: one self-contained page (inline CSS, figures embedded as PNG data, no script, nothing fetched);
* report.md: the same tables, figures linked from the figures folder;
* tables/<name>.tex: one booktabs table per table of the report;
* provenance.json: every cell's runs with their hashes, versions, devices and commits, disagreements,
  failed runs, the resolved configuration.

Every template escapes every value it prints (HTML: Jinja2 autoescape; Markdown and
LaTeX: an escaping `finalize`): strategy names and error texts come from submitted
code and must never become markup.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import markupsafe
import pandas as pd

from ..files import atomic_directory, write_json_atomic, write_text_atomic
from ..plan import PLAN_WARNINGS_KEY
from ..tasks import find
from .figures import Figure, read_manifest
from .lineage import cell_warnings, provenance
from .reference import compare, read_reference
from .reproduction import (
    NOT_RUN,
    RULE,
    compare_protocols,
    conclusion_changes,
    corrections_paragraph,
    count_sentence,
    verdicts,
)
from .stats import SIGNIFICANCE
from .summarize import blank_missing_text, read_table
from .tables import (
    Table,
    changes_table,
    profile_table,
    protocol_table,
    ranking_table,
    reference_table,
    reproduction_table,
    result_table,
    slug,
    statistics_table,
)

BEST = "▲"
HASH_WIDTH = 12
# The page's one script (sorting and filtering its tables), inlined: the policy allows it by its hash and nothing
# else, so the page loads nothing and runs no other code.
EXPLORE_SCRIPT = (Path(__file__).parent / "templates" / "explore.js").read_text(encoding="utf-8")
CONTENT_SECURITY_POLICY = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-"
                           + base64.b64encode(hashlib.sha256(EXPLORE_SCRIPT.encode()).digest()).decode() + "'")
LOADER = jinja2.PackageLoader("optrepro.report", "templates")
OPTIONS = {"loader": LOADER, "undefined": jinja2.StrictUndefined, "trim_blocks": True, "lstrip_blocks": True}
MARKDOWN_SPECIAL = str.maketrans({c: f"\\{c}" for c in "\\`*_{}[]()#+!|~"} | {"<": "&lt;", ">": "&gt;",
                                                                              "&": "&amp;", "\n": " ", "\r": " "})
TEX_SPECIAL = str.maketrans({"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                             "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                             "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
                             "±": r"\ensuremath{\pm}", "Δ": r"\ensuremath{\Delta}", "ρ": r"\ensuremath{\rho}",
                             "τ": r"\ensuremath{\tau}", "ε": r"\ensuremath{\varepsilon}", "α": r"\ensuremath{\alpha}",
                             "↑": r"\ensuremath{\uparrow}", "↓": r"\ensuremath{\downarrow}", "≥": r"\ensuremath{\geq}",
                             "≤": r"\ensuremath{\leq}", "×": r"\ensuremath{\times}", "−": "-", "▲": "", "\n": " "})


def markdown_escape(value: object) -> str:
    """Every printed value as literal Markdown text; only what the template marks `| safe` (our own paths) is not."""
    return value if isinstance(value, markupsafe.Markup) else str(value).translate(MARKDOWN_SPECIAL)


def tex_escape(value: object) -> str:
    return str(value).translate(TEX_SPECIAL)


HTML = jinja2.Environment(autoescape=True, **OPTIONS)
MARKDOWN = jinja2.Environment(autoescape=False, finalize=markdown_escape, **OPTIONS)
TEX = jinja2.Environment(autoescape=False, finalize=tex_escape, block_start_string="<%", block_end_string="%>",
                         variable_start_string="<<", variable_end_string=">>", comment_start_string="<#",
                         comment_end_string="#>", **OPTIONS)


@dataclass
class Part:
    """A heading of the report with its opening text, tables (statistics tables go to a collapsed block) and
    figures."""

    title: str
    anchor: str
    tables: list[Table] = field(default_factory=list)
    details: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    parts: list["Part"] = field(default_factory=list)
    text: str = ""


def scale_label(scale: str) -> str:
    if scale == "full":
        return "Scale: full — the paper's budgets"
    return f"Scale: {scale} — reduced budgets, not comparable with the paper"


def config_order(config: dict):
    """Sort key of (task, protocol): the configuration's order (mlsbench before corrected), then by name."""
    tasks = list(config["tasks"])

    def key(task_protocol: tuple[str, str]) -> tuple:
        task, protocol = task_protocol
        protocols = config["tasks"][task]["protocols"] if task in config["tasks"] else []
        return (tasks.index(task) if task in tasks else len(tasks), task,
                protocols.index(protocol) if protocol in protocols else len(protocols), protocol)
    return key


def sections(summary: pd.DataFrame, runs: pd.DataFrame, comparison: pd.DataFrame, figures: list[Figure],
             config: dict) -> list[Part]:
    """One part per scale × task × protocol (in the configuration's order), holding one part per benchmark."""
    warnings = cell_warnings(runs)
    several_scales = summary["scale"].nunique() > 1
    placed = {}
    for figure in figures:
        placed.setdefault((figure.scale, figure.task, figure.protocol, figure.benchmark), []).append(figure)
    result = []
    order = config_order(config)
    groups = sorted(summary.groupby(["scale", "task", "protocol"], sort=False),
                    key=lambda group: (group[0][0], *order(group[0][1:])))
    for (scale, task, protocol), group in groups:
        words = [task, protocol] + ([scale] if several_scales else [])
        spec = find(task)
        section = Part(" · ".join(words), slug(scale, task, protocol),
                       figures=placed.get((scale, task, protocol, ""), []), text=spec.summary if spec else "")
        for benchmark, cells in group.groupby("benchmark", sort=False):
            title, name = " · ".join([*words, benchmark]), slug(scale, task, protocol, benchmark)
            cell_warning = {strategy: text for (t, p, b, strategy, s), text in warnings.items()
                            if (t, p, b, s) == (task, protocol, benchmark, scale)}
            part = Part(benchmark, name, [result_table(cells, title, f"results-{name}", cell_warning)],
                        [statistics_table(cells, f"All statistics: {title}", f"statistics-{name}")],
                        placed.get((scale, task, protocol, benchmark), []))
            compared = comparison[(comparison["task"] == task) & (comparison["protocol"] == protocol)
                                  & (comparison["benchmark"] == benchmark)]
            if len(compared):
                part.tables.append(reference_table(compared, f"Reference comparison: {title}", f"reference-{name}"))
            section.parts.append(part)
        title = " · ".join(words)
        section.tables = [table for table in (
            ranking_table(group, f"Mean rank across benchmarks: {title}", f"ranking-{section.anchor}"),
            profile_table(group, f"Performance profile: {title}", f"profile-{section.anchor}")) if table]
        result.append(section)
    return result


def opening_parts(runs: pd.DataFrame, summary: pd.DataFrame, reference: pd.DataFrame | None,
                  config: dict) -> list[Part]:
    """What the report opens with: did the original's numbers reproduce (with a reference file), and which
    conclusions survive the corrections (for benchmarks run under both protocols)."""
    parts = []
    judged = verdicts(runs, reference) if reference is not None else pd.DataFrame()
    if len(judged):
        order = config_order(config)
        part = Part("Reproduction summary", "reproduction", text=f"{count_sentence(judged)} {RULE}")
        shown = judged[judged["verdict"] != NOT_RUN]
        for task, rows in sorted(shown.groupby("task", sort=False), key=lambda g: order((g[0], "mlsbench"))):
            part.tables.append(reproduction_table(rows, f"Reproduction: {task}", f"reproduction-{task}"))
        parts.append(part)
    comparisons = compare_protocols(summary)
    if comparisons:
        changes = conclusion_changes(comparisons)
        part = Part("Which conclusions survive the corrections", "corrections",
                    text=corrections_paragraph(comparisons, changes))
        if len(changes):
            part.tables.append(changes_table(changes, "Conclusions that change under the corrections",
                                             "corrections-changes"))
        part.tables += [protocol_table(c, f"mlsbench vs corrected: {c['task']} · {c['benchmark']}",
                                       slug("protocols", c["scale"], c["task"], c["benchmark"])) for c in comparisons]
        parts.append(part)
    return parts


def all_tables(parts: list[Part]) -> list[Table]:
    return [table for part in parts for table in part.tables + part.details + all_tables(part.parts)]


def short(value: object, width: int | None = None) -> str:
    """A provenance field as the page shows it: hashes cut to `width`, '—' when missing."""
    return "—" if value is None or value == "" else str(value)[:width]


def page_provenance(record: dict) -> list[dict[str, object]]:
    """provenance.json's cells, their fields shortened for the page."""
    hashes = ("strategy_sha256", "driver_sha256", "data_sha256", "git_commit")
    return [{**cell, "runs": [{**{k: short(v) for k, v in run.items()}, **{k: short(run[k], HASH_WIDTH)
                                                                           for k in hashes}}
                              for run in cell["runs"]]} for cell in record["cells"]]


def sandbox_counts(runs: pd.DataFrame) -> str:
    """`bwrap: 70 runs, none: 6 runs`: what the drivers ran in ('' for records that do not say)."""
    used = runs["sandbox"].dropna().astype(str) if "sandbox" in runs else pd.Series(dtype=str)
    counts = used[used != ""].value_counts()
    return ", ".join(f"{name}: {count} run{'s' if count != 1 else ''}" for name, count in counts.items())


def images(figures_dir: Path, figures: list[Figure]) -> dict[str, str]:
    return {f.name: base64.b64encode((figures_dir / f"{f.name}.png").read_bytes()).decode() for f in figures}


@dataclass
class Report:
    html: str
    markdown: str
    tex: dict[str, str]
    provenance: dict


def render_report(runs: pd.DataFrame, summary: pd.DataFrame, config: dict, figures_dir: Path | None = None,
                  reference: pd.DataFrame | None = None, missing_runs: list[str] | None = None,
                  markdown_figures: str = "figures", plan_warnings: list[str] | None = None) -> Report:
    """Every form of the report from the tables; `figures_dir` holds the figures rule's output (none: no figures);
    `plan_warnings` what the plan left out (strategy files with invalid names)."""
    summary = blank_missing_text(summary)
    figures = read_manifest(figures_dir) if figures_dir else []
    comparison = compare(summary, reference) if reference is not None else pd.DataFrame(
        columns=["task", "protocol", "benchmark"])
    parts = sections(summary, runs, comparison, figures, config)
    opening = opening_parts(runs, summary, reference, config)
    record = provenance(runs, config, missing_runs or [])
    scale = config["scale"]
    context = {
        "scale": scale, "scale_label": scale_label(scale), "best": BEST, "significance": SIGNIFICANCE,
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"), "sections": parts,
        "opening": opening,
        "n_runs": len(runs), "n_ok": int((runs["status"] == "ok").sum()), "failed": record["failed_runs"],
        "sandboxes": sandbox_counts(runs), "plan_warnings": plan_warnings or [],
        "missing": record["missing_runs"], "cells": page_provenance(record),
        "warnings": [cell for cell in record["cells"] if cell["warning"]],
        "config": json.dumps(config, indent=2), "figures_path": markdown_figures,
        "hash_width": HASH_WIDTH,
    }
    html = HTML.get_template("report.html.j2").render(
        **context, images=images(figures_dir, figures) if figures_dir else {},
        content_security_policy=markupsafe.Markup(CONTENT_SECURITY_POLICY),
        explore_script=markupsafe.Markup(EXPLORE_SCRIPT))
    markdown = MARKDOWN.get_template("report.md.j2").render(**context)
    tex = {table.name: TEX.get_template("table.tex.j2").render(table=table) for table in all_tables(opening + parts)}
    return Report(html, markdown, tex, record)


def plan_mismatch(runs: pd.DataFrame, run_list: Path) -> str | None:
    """Why runs.csv does not belong to the current plan (the run folders `list_runs` wrote), or None."""
    planned = {line for line in run_list.read_text().splitlines() if line.strip()}
    tabled = set(runs["run_dir"].astype(str)) if "run_dir" in runs else set()
    if planned == tabled:
        return None
    return (f"{run_list}: the tables are not those of the current plan ({len(planned - tabled)} planned runs "
            f"missing, {len(tabled - planned)} not planned); collect again")


def write_report(report: Report, html: Path, markdown: Path, tables: Path, provenance_json: Path) -> None:
    with atomic_directory(tables) as staging:
        for name, text in report.tex.items():
            (staging / f"{name}.tex").write_text(text, encoding="utf-8")
    write_json_atomic(provenance_json, report.provenance)
    write_text_atomic(markdown, report.markdown)
    write_text_atomic(html, report.html)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optrepro.report.render", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="input runs.csv (optrepro.collect)")
    parser.add_argument("--summary", type=Path, required=True, help="input summary.csv (optrepro.report.summarize)")
    parser.add_argument("--figures", type=Path, required=True, help="input figures folder (optrepro.report.figures)")
    parser.add_argument("--config", type=Path, required=True, help="the resolved workflow configuration (JSON)")
    parser.add_argument("--reference", type=Path, help="reference CSV (optrepro.report.reference)")
    parser.add_argument("--run-list", type=Path,
                        help="the plan's run folders (list_runs); refuse tables that are not exactly its runs")
    parser.add_argument("--html", type=Path, required=True, help="output report.html")
    parser.add_argument("--markdown", type=Path, required=True, help="output report.md")
    parser.add_argument("--tables", type=Path, required=True, help="output folder of LaTeX tables (replaced)")
    parser.add_argument("--provenance", type=Path, required=True, help="output provenance.json")
    args = parser.parse_args(argv)
    runs = read_table(args.runs)
    if args.run_list and (mismatch := plan_mismatch(runs, args.run_list)):
        print(f"ERROR: {mismatch}", file=sys.stderr)
        return 2
    reference = read_reference(args.reference) if args.reference else None
    config = json.loads(args.config.read_text())
    plan_warnings = config.pop(PLAN_WARNINGS_KEY, [])
    report = render_report(runs, read_table(args.summary), config, args.figures, reference,
                           markdown_figures=os.path.relpath(args.figures, args.markdown.parent),
                           plan_warnings=plan_warnings)
    write_report(report, args.html, args.markdown, args.tables, args.provenance)
    print(f"wrote {args.html}, {args.markdown}, {len(report.tex)} LaTeX tables, {args.provenance}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
