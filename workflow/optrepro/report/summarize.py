"""Statistics over seeds for every task × protocol × benchmark × strategy × metric: the `summarize` rule's script.

`python -m optrepro.report.summarize --runs runs.csv --out summary.csv [--reference TASK=STRATEGY ...]`

summary.csv has one row per cell and metric: n ok runs with a value, n_ok, n_failed,
mean, sample std, Student-t 95% CI of the mean, and the comparison with the task's
reference strategy (stats.compare): the test (paired over common seeds where the
task's seeds pair, TaskSpec.seed_fixes, else Welch's), the seeds it used, the
difference with its 95% CI, the spread it saw, its p-value and the p-value after
Holm's adjustment across every comparison of the same task × protocol ×
benchmark × scale (the family one benchmark's tables show). A metric the
task's spec declares (TaskSpec.metrics) carries its direction; any other metric a run printed
is kept with an empty direction (shown, never marked best). A non-numeric
metric (DP-SGD's `audit`) has no statistics: `seen` lists what the seeds gave.
Empty text (direction, seen, reference) is missing, as in the CSV file.
`headline` marks the metric that ranks and profiles compare across benchmarks:
the task's declared headline for the benchmark and protocol (TaskSpec.headline)
if the tables show it, else its first declared metric that the benchmark's runs printed.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from pathlib import Path

import pandas as pd

from ..collect import IDENTITY, PROVENANCE
from ..files import write_csv_atomic
from ..sandbox import UNSANDBOXED
from ..tasks import find
from .stats import Comparison, compare, holm, seed_stats

CELL = ["task", "protocol", "benchmark", "strategy", "scale"]
STATS = ["n", "n_ok", "n_failed", "mean", "std", "ci95_low", "ci95_high", "seen"]
# Per cell, from the task's judgement of its ok runs: why it may not be ranked, and what must be shown beside it.
JUDGEMENTS = ["excluded", "caveat"]
# The comparison with the reference strategy (stats.Comparison), then the Holm-adjusted p-value.
COMPARISON = ["delta", "delta_ci_low", "delta_ci_high", "test", "test_n", "spread", "p_value", "p_holm"]
COLUMNS = CELL + ["metric", "direction", "headline"] + STATS + JUDGEMENTS + ["reference", "reference_mean"] + COMPARISON
TEXT = ["direction", "seen", *JUDGEMENTS, "reference", "test"]


def read_table(path: Path) -> pd.DataFrame:
    """Read a table of ours; only empty cells are missing, so a strategy named `NA` or `null` stays a name."""
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def is_numeric(values: pd.Series) -> bool:
    present = values.dropna()
    return bool(pd.to_numeric(present, errors="coerce").notna().all())


def benchmark_metrics(runs: pd.DataFrame, declared: dict[str, str]) -> dict[str, str]:
    """The metrics one benchmark's tables show, with their directions ('' when undeclared): the declared ones that
    some run printed, in declared order, then the others in printed order; all declared ones if nothing was printed."""
    printed = [column for column in runs.columns
               if column not in IDENTITY + PROVENANCE and runs[column].notna().any()]
    shown = {metric: direction for metric, direction in declared.items() if metric in printed} or dict(declared)
    return {**shown, **{metric: "" for metric in printed if metric not in declared}}


def seen_values(values: pd.Series) -> str:
    """What the seeds gave for a non-numeric metric, most frequent first: `ok ×2, under-noised:0.50 ×1`."""
    counts = Counter(values.dropna().astype(str))
    return ", ".join(f"{value} ×{count}" for value, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def headline_metric(metrics: dict[str, str], preferred: str | None) -> str | None:
    """The task's preferred headline where the benchmark's tables show it, else the first ranked metric."""
    ranked = [metric for metric, direction in metrics.items() if direction]
    return preferred if preferred in ranked else next(iter(ranked), None)


def with_seeds(found: dict[str, list[object]]) -> str:
    """`text (seed 1, 2); other (seed 3)`: each distinct text once, with the seeds of the runs that gave it."""
    return "; ".join(f"{text} (seed {', '.join(map(str, seeds))})" for text, seeds in found.items() if text)


def unsandboxed(run: dict) -> str:
    """Why a run that ran without the sandbox it was meant to have may not be ranked ('' when it may)."""
    if run.get("sandbox") != UNSANDBOXED:
        return ""
    return ("ran without bubblewrap (`sandbox: auto` could not use it; confined at most), so its strategy could "
            "have reached its numbers; `sandbox: none` ranks the runs of trusted strategies")


def judgements(task: str, ok: pd.DataFrame) -> dict[str, str]:
    """Why a cell's ok runs may not be ranked (unsandboxed, or the task's `ranking_exclusion`) and the task's
    `caveat` of them, each text with its seeds."""
    spec = find(task)
    judges = {"excluded": [unsandboxed, spec and spec.ranking_exclusion], "caveat": [spec and spec.caveat]}
    result = {}
    for column in JUDGEMENTS:
        found = {}
        for _, run in ok.iterrows():
            fields = run.dropna().to_dict()
            text = next((said for judge in judges[column] if judge and (said := judge(fields))), "")
            found.setdefault(text, []).append(run["seed"])
        result[column] = with_seeds(found)
    return result


def cell_rows(identity: dict, cell: pd.DataFrame, metrics: dict[str, str], headline: str | None
              ) -> list[dict[str, object]]:
    ok = cell[cell["status"] == "ok"]
    counts = {"n_ok": len(ok), "n_failed": len(cell) - len(ok), **judgements(identity["task"], ok)}
    rows = []
    for metric, direction in metrics.items():
        values = ok[metric] if metric in ok else pd.Series(dtype=float)
        if is_numeric(values):
            summary = {**seed_stats(values), "seen": ""}
        else:
            summary = {**seed_stats(pd.Series(dtype=float)), "n": int(values.notna().sum()),
                       "seen": seen_values(values)}
        rows.append({**identity, "metric": metric, "direction": direction, "headline": metric == headline,
                     **summary, **counts})
    return rows


def summarize(runs: pd.DataFrame, references: dict[str, str]) -> pd.DataFrame:
    """One row per cell and metric; a cell whose runs all failed still appears, with n=0."""
    rows, seeds = [], {}
    for (task, benchmark), bench_runs in runs.groupby(["task", "benchmark"], sort=True):
        spec = find(task)  # None for a task this checkout does not know: nothing declared
        metrics = benchmark_metrics(bench_runs.dropna(axis=1, how="all"), dict(spec.metrics) if spec else {})
        for key, cell in bench_runs.groupby(CELL, sort=True, dropna=False):
            identity = dict(zip(CELL, key))
            preferred = spec.headline_metric(benchmark, identity["protocol"]) if spec else None
            headline = headline_metric(metrics, preferred)
            rows.extend(cell_rows(identity, cell, metrics, headline))
            seeds[key] = cell[cell["status"] == "ok"]
    summary = pd.DataFrame(rows, columns=COLUMNS[:-len(COMPARISON) - 2])
    summary["reference"] = [references.get(task, "") for task in summary["task"]]
    same = [column for column in CELL + ["metric"] if column != "strategy"]
    reference = summary.loc[summary["strategy"] == summary["reference"], same + ["mean"]]
    summary = summary.merge(reference.rename(columns={"mean": "reference_mean"}), on=same, how="left")
    # An unrankable cell is not compared with the reference strategy, and nothing is compared with an unrankable
    # reference.
    excluded = summary["excluded"] != ""
    unrankable_reference = summary.loc[excluded & (summary["strategy"] == summary["reference"]), same]
    against = summary[same].merge(unrankable_reference.drop_duplicates().assign(_gone=True), on=same,
                                  how="left")["_gone"].fillna(False).to_numpy(dtype=bool)
    compared = [Comparison() if gone else against_reference(row, seeds)
                for gone, row in zip(excluded.to_numpy() | against, summary.itertuples(index=False))]
    summary["delta"] = [c.delta if c.test else row.mean - row.reference_mean
                        for c, row in zip(compared, summary.itertuples(index=False))]
    summary.loc[excluded.to_numpy() | against, "delta"] = math.nan
    for column, attribute in zip(COMPARISON[1:-1], ["ci_low", "ci_high", "test", "n", "spread", "p"]):
        summary[column] = [getattr(c, attribute) for c in compared]
    family = [column for column in CELL if column != "strategy"]
    summary["p_holm"] = summary.groupby(family, dropna=False)["p_value"].transform(holm) if len(summary) else []
    summary[TEXT] = summary[TEXT].mask(summary[TEXT] == "")
    return summary[COLUMNS]


def blank_missing_text(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary with missing text as '' (what the tables and figures test for)."""
    return summary.assign(**{column: summary[column].astype(object).fillna("") for column in TEXT})


def against_reference(row, seeds: dict[tuple, pd.DataFrame]) -> Comparison:
    """One cell's seeds against the reference strategy's seeds in the same benchmark, protocol and scale, paired
    by seed where the task says a seed fixes the same conditions for every strategy."""
    if not row.reference or row.strategy == row.reference or row.seen:
        return Comparison()
    own = seeds[(row.task, row.protocol, row.benchmark, row.strategy, row.scale)]
    other = seeds.get((row.task, row.protocol, row.benchmark, row.reference, row.scale))
    if other is None or row.metric not in own or row.metric not in other:
        return Comparison()
    spec = find(row.task)
    return compare(own.set_index("seed")[row.metric], other.set_index("seed")[row.metric],
                   paired=bool(spec and spec.seed_fixes))


def config_references(config: dict) -> dict[str, str]:
    """task → its reference strategy, as the configuration names them."""
    return {task: settings["reference"] for task, settings in config["tasks"].items() if settings.get("reference")}


def parse_reference(text: str) -> tuple[str, str]:
    task, sep, strategy = text.partition("=")
    if not (sep and task and strategy):
        raise argparse.ArgumentTypeError(f"expected TASK=STRATEGY, got {text!r}")
    return task, strategy


def write_summary(runs_csv: Path, out: Path, references: dict[str, str]) -> pd.DataFrame:
    summary = summarize(read_table(runs_csv), references)
    write_csv_atomic(summary, out)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optrepro.report.summarize", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="input runs.csv (optrepro.collect)")
    parser.add_argument("--out", type=Path, required=True, help="output summary.csv")
    parser.add_argument("--reference", type=parse_reference, action="append", default=[], metavar="TASK=STRATEGY",
                        help="the strategy a task's deltas and Welch tests are taken against (repeatable)")
    args = parser.parse_args(argv)
    summary = write_summary(args.runs, args.out, dict(args.reference))
    print(f"summarized {len(summary)} cell metrics", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
