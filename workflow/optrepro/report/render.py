"""The plain HTML report: per-benchmark tables, failed runs with their reasons, provenance, configuration.

`python -m optrepro.report.render --runs runs.csv --summary summary.csv --config config.json --out report.html`

One self-contained page (inline CSS, no external assets). Autoescaping is on:
strategy names and error texts come from submitted code and must never become markup.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import pandas as pd

from ..provenance import write_text_atomic
from .summarize import read_table

BEST = "▲"
PLAIN = ["task", "protocol", "benchmark", "strategy", "seed", "status", "error", "python", "torch", "host"]
HASHES = ["strategy_sha256", "driver_sha256", "data_sha256", "git_commit"]
ENVIRONMENT = jinja2.Environment(loader=jinja2.PackageLoader("optrepro.report", "templates"), autoescape=True,
                                 undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def missing(value: object) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def number(value: object, signed: bool = False) -> str:
    """4 significant digits, thousands separated without decimals from 1,000 up, '—' when missing."""
    if missing(value):
        return "—"
    sign = "+" if signed else ""
    value = float(value)
    return f"{value:{sign},.0f}" if abs(value) >= 1000 else f"{value:{sign}.4g}"


def text(value: object, width: int | None = None) -> str:
    """A table cell's text, cut to `width` characters (hashes), '—' when missing."""
    return "—" if missing(value) else str(value)[:width]


def scale_label(scale: str) -> str:
    if scale == "full":
        return "Scale: full — the paper's budgets"
    return f"Scale: {scale} — reduced budgets, not comparable with the paper"


def best_means(metric_rows: pd.DataFrame) -> set[str]:
    """Strategies holding the best mean of one column by its direction; none when all that have a mean tie."""
    means = metric_rows.dropna(subset=["mean"])
    best = means["mean"].max() if (means["direction"] == "higher").all() else means["mean"].min()
    winners = set(means.loc[means["mean"] == best, "strategy"])
    return winners if len(winners) < len(means) else set()


def value_cell(row: pd.Series, best: bool) -> dict[str, object]:
    """What one strategy × metric cell shows: mean ± std with n and CI, or FAILED with the error count."""
    failed = [f"{row['n_failed']} failed"] if row["n_failed"] else []
    if row["n"] == 0:
        return {"value": "FAILED" if failed else "—", "notes": ", ".join(failed), "failed": bool(failed),
                "best": False, "delta": "—"}
    spread = row["n"] >= 2
    value = number(row["mean"]) + (f" ± {number(row['std'])}" if spread else "")
    ci = [f"95% CI [{number(row['ci95_low'])}, {number(row['ci95_high'])}]"] if spread else []
    return {"value": f"{BEST} {value}" if best else value, "notes": ", ".join([f"n={row['n']}", *ci, *failed]),
            "failed": False, "best": best, "delta": number(row["delta"], signed=True)}


def benchmark_table(cells: pd.DataFrame) -> dict[str, object]:
    """One benchmark's table: rows are strategies, two columns (value, Δ) per metric."""
    metrics = dict(zip(cells["metric"], cells["direction"]))
    best = {metric: best_means(cells[cells["metric"] == metric]) for metric in metrics}
    reference = "" if missing(cells["reference"].iloc[0]) else cells["reference"].iloc[0]
    rows = []
    for strategy, strategy_cells in cells.groupby("strategy", sort=False):
        by_metric = strategy_cells.set_index("metric")
        rows.append({"strategy": strategy, "is_reference": strategy == reference,
                     "cells": [value_cell(by_metric.loc[metric], strategy in best[metric]) for metric in metrics]})
    return {"metrics": metrics, "reference": reference, "rows": rows}


def benchmark_tables(summary: pd.DataFrame) -> list[dict[str, object]]:
    """Tables in summary order, one per task × protocol × benchmark (× scale: never mixed either)."""
    keys = ["task", "protocol", "benchmark", "scale"]
    return [{**dict(zip(keys, key)), **benchmark_table(cells)}
            for key, cells in summary.groupby(keys, sort=False, dropna=False)]


def run_row(run: pd.Series) -> dict[str, object]:
    """One run as the failed-runs and provenance tables show it; hashes cut to 12 characters."""
    return {**{field: text(run[field]) for field in PLAIN}, **{field: text(run[field], 12) for field in HASHES},
            "git_dirty": str(run["git_dirty"]) == "True", "wall_seconds": number(run["wall_seconds"]),
            "device": f"{text(run['device'])} ({text(run['device_name'])})"}


def render_report(runs: pd.DataFrame, summary: pd.DataFrame, config: dict) -> str:
    rows = [run_row(run) for _, run in runs.iterrows()]
    scale = config.get("scale", "full")
    return ENVIRONMENT.get_template("report.html.j2").render(
        scale=scale, scale_label=scale_label(scale), best=BEST,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        runs=rows, n_ok=sum(row["status"] == "ok" for row in rows),
        failed=[row for row in rows if row["status"] != "ok"],
        tables=benchmark_tables(summary), config=json.dumps(config, indent=2, sort_keys=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optrepro.report.render", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="input runs.csv (optrepro.collect)")
    parser.add_argument("--summary", type=Path, required=True, help="input summary.csv (optrepro.report.summarize)")
    parser.add_argument("--config", type=Path, required=True, help="the resolved workflow configuration (JSON)")
    parser.add_argument("--out", type=Path, required=True, help="output HTML file")
    args = parser.parse_args(argv)
    html = render_report(read_table(args.runs), read_table(args.summary), json.loads(args.config.read_text()))
    write_text_atomic(args.out, html)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
