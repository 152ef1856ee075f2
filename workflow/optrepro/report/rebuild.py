"""Rebuild every report output from the run records under results/, training nothing (`make report`).

`python -m optrepro.report.rebuild --configfile config/quick.yaml`

Run from the folder holding results/ (the repository root). It takes the
configuration's planned runs that have a record, wherever they were computed
(this machine, another one, a cluster: copy results/runs/ over), lists the
planned runs that have none, and runs the workflow's own steps (collect,
summarize, figures, report) on them, writing the same files:
results/tables/{runs,curves,summary}.csv, reports/config.json, reports/figures/,
reports/report.{html,md}, reports/tables/, reports/provenance.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .. import configuration, plan
from ..collect import write_tables
from ..files import write_text_atomic
from .figures import write_figures
from .reference import read_reference, reference_path
from .render import render_report, write_report
from .summarize import config_references, read_table, write_summary

TABLES = Path("results/tables")
REPORTS = Path("reports")


def rebuild(config: dict) -> None:
    started = time.monotonic()
    plan.check_config(config)
    planned = plan.planned_runs(config)
    present = [Path(run.run_dir) for run in planned if Path(run.run_dir, "record.json").is_file()]
    missing = [run.run_dir for run in planned if not Path(run.run_dir, "record.json").is_file()]
    for run_dir in missing:
        print(f"no record: {run_dir}", file=sys.stderr)
    write_tables(present, TABLES / "runs.csv", TABLES / "curves.csv")
    write_summary(TABLES / "runs.csv", TABLES / "summary.csv", config_references(config))
    # Read back what the workflow's later steps read, so both paths give the same report.
    runs, curves, summary = (read_table(TABLES / f"{name}.csv") for name in ("runs", "curves", "summary"))
    plan_warnings = plan.skipped_strategy_files(config)
    for warning in plan_warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    # in order: tasks as listed; what the plan left out beside it, as the workflow's write_config does
    write_text_atomic(REPORTS / "config.json", json.dumps({**config, plan.PLAN_WARNINGS_KEY: plan_warnings},
                                                          indent=2))
    path = reference_path(config)
    reference = read_reference(path) if path else None
    written = write_figures(runs, curves, summary, reference, REPORTS / "figures")
    report = render_report(runs, summary, config, REPORTS / "figures", reference, missing,
                           plan_warnings=plan_warnings)
    write_report(report, REPORTS / "report.html", REPORTS / "report.md", REPORTS / "tables",
                 REPORTS / "provenance.json")
    print(f"rebuilt the report from {len(present)} of {len(planned)} planned runs: {len(written)} figures, "
          f"{len(report.tex)} LaTeX tables, in {time.monotonic() - started:.1f}s", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optrepro.report.rebuild", description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", type=Path, default=Path("config/config.yaml"),
                        help="the configuration the results were run with (default: config/config.yaml); paths in "
                             "it are relative to the working folder")
    args = parser.parse_args(argv)
    try:
        rebuild(configuration.load(args.configfile))
    except configuration.WorkflowConfigError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
