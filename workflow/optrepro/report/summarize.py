"""Statistics over seeds for every task × protocol × benchmark × strategy × metric: the `summarize` rule's script.

`python -m optrepro.report.summarize --runs runs.csv --out summary.csv [--reference TASK=STRATEGY ...]`

summary.csv has one row per cell and metric (the task's METRICS, in declared
order): n ok runs with a value, n_failed, mean, sample std, Student-t 95% CI
of the mean, and the difference to the task's reference strategy.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd
from scipy import stats

from ..collect import write_csv_atomic
from ..tasks import task_info

CELL = ["task", "protocol", "benchmark", "strategy", "scale"]
STATS = ["n", "n_failed", "mean", "std", "ci95_low", "ci95_high"]
COLUMNS = CELL + ["metric", "direction"] + STATS + ["reference", "reference_mean", "delta"]


def read_table(path: Path) -> pd.DataFrame:
    """Read a table of ours; only empty cells are missing, so a strategy named `NA` or `null` stays a name."""
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def seed_stats(values: pd.Series) -> dict[str, float]:
    """Mean, sample std and Student-t 95% CI of the mean; spread and CI are NaN below two values."""
    values = values.dropna().astype(float)
    n = len(values)
    mean = values.mean() if n else math.nan
    std = values.std(ddof=1) if n >= 2 else math.nan
    half = stats.t.ppf(0.975, n - 1) * std / math.sqrt(n) if n >= 2 else math.nan
    return {"n": n, "mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half}


def summarize(runs: pd.DataFrame, references: dict[str, str]) -> pd.DataFrame:
    """One row per cell and metric; a cell whose runs all failed still appears, with n=0."""
    rows = []
    for key, cell in runs.groupby(CELL, sort=True, dropna=False):
        identity = dict(zip(CELL, key))
        ok = cell[cell["status"] == "ok"]
        for metric, direction in task_info(identity["task"]).METRICS.items():
            values = ok[metric] if metric in ok else pd.Series(dtype=float)
            rows.append({**identity, "metric": metric, "direction": direction, **seed_stats(values),
                         "n_failed": int((cell["status"] != "ok").sum()),
                         "reference": references.get(identity["task"], "")})
    summary = pd.DataFrame(rows, columns=COLUMNS[:-2])
    same = [column for column in CELL + ["metric"] if column != "strategy"]
    reference = summary.loc[summary["strategy"] == summary["reference"], same + ["mean"]]
    summary = summary.merge(reference.rename(columns={"mean": "reference_mean"}), on=same, how="left")
    summary["delta"] = summary["mean"] - summary["reference_mean"]
    return summary[COLUMNS]


def parse_reference(text: str) -> tuple[str, str]:
    task, sep, strategy = text.partition("=")
    if not (sep and task and strategy):
        raise argparse.ArgumentTypeError(f"expected TASK=STRATEGY, got {text!r}")
    return task, strategy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optrepro.report.summarize", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="input runs.csv (optrepro.collect)")
    parser.add_argument("--out", type=Path, required=True, help="output summary.csv")
    parser.add_argument("--reference", type=parse_reference, action="append", default=[], metavar="TASK=STRATEGY",
                        help="the strategy a task's deltas are taken against (repeatable)")
    args = parser.parse_args(argv)
    summary = summarize(read_table(args.runs), dict(args.reference))
    write_csv_atomic(summary, args.out)
    print(f"summarized {len(summary)} cell metrics", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
