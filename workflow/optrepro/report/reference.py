"""Reference numbers (the original benchmark's, a paper's) beside the reproduced ones, and their importer.

A reference file is a CSV with the columns of `COLUMNS`: one value per task,
benchmark, strategy, protocol, seed (or `mean` for an already averaged value),
metric, and where it comes from. The report compares a cell's reproduced mean
with the reference: the `mean` row when there is one, else the mean of the
reference seeds; the difference, and whether the reference lies inside the
reproduced 95% CI.

The importer reads logs of the original benchmark, one output file per command
and seed, in the line formats of the original benchmarks (docs/tasks/*.md) (optrepro.metrics parses them):

`python -m optrepro.report.reference import --task parity --strategy default --protocol mlsbench
--source "original benchmark, commit abc" --out reference.csv [--benchmark n32-k8] [--seed 42] LOG...`

Without --benchmark/--seed they are read from each log's file name (`n32-k8_seed42.log`).
Rows already in --out are kept unless the import replaces them.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

from .. import tasks
from ..files import write_csv_atomic
from ..metrics import final_metrics, parse_log

KEY = ["task", "benchmark", "strategy", "protocol", "seed", "metric"]
COLUMNS = KEY + ["value", "source"]
CELL = ["task", "protocol", "benchmark", "strategy", "metric"]
MEAN = "mean"


class ReferenceError(ValueError):
    """A reference file or log that cannot be used, with what is wrong in it."""


def reference_path(config: dict) -> Path | None:
    """The validated configuration's `report.reference_file` (optional), relative to the working folder or
    absolute."""
    name = config["report"].get("reference_file")
    return Path(name) if name else None


def read_reference(path: str | Path) -> pd.DataFrame:
    """Read and check a reference file: every column present, seeds integers or `mean`, values numbers (the text
    as printed is kept in `printed`: its precision is what a reproduction is judged at)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in COLUMNS if column not in table.columns]
    if missing:
        raise ReferenceError(f"{path}: missing columns {missing} (expected {', '.join(COLUMNS)})")
    table = table[COLUMNS]
    value = pd.to_numeric(table["value"], errors="coerce")
    bad_value = value.isna()
    bad_seed = ~table["seed"].str.fullmatch(rf"-?\d+|{MEAN}")
    for label, bad in (("value is not a number", bad_value), (f"seed is not an integer or '{MEAN}'", bad_seed)):
        if bad.any():
            lines = ", ".join(str(i + 2) for i in table.index[bad][:5])
            raise ReferenceError(f"{path}: {label} on line(s) {lines}")
    return table.assign(value=value, printed=table["value"].str.strip())


def reference_values(reference: pd.DataFrame) -> pd.DataFrame:
    """One value per cell and metric: the `mean` row if given, else the mean over the reference seeds."""
    rows = []
    for key, group in reference.groupby(CELL, sort=True):
        mean_rows = group[group["seed"] == MEAN]
        used = mean_rows if len(mean_rows) else group
        rows.append({**dict(zip(CELL, key)), "reference_value": used["value"].mean(),
                     "reference_seeds": MEAN if len(mean_rows) else str(len(group)),
                     "reference_source": "; ".join(dict.fromkeys(used["source"]))})
    return pd.DataFrame(rows, columns=CELL + ["reference_value", "reference_seeds", "reference_source"])


def compare(summary: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Reference values joined to the reproduced statistics (an outer join: a reference without a reproduced
    cell still shows). `difference` = reproduced mean − reference; `inside_ci` is empty below two seeds."""
    values = reference_values(reference)
    reproduced = summary[CELL + ["scale", "direction", "n", "mean", "std", "ci95_low", "ci95_high"]]
    table = values.merge(reproduced, on=CELL, how="left")
    table["difference"] = table["mean"] - table["reference_value"]
    inside = table["reference_value"].between(table["ci95_low"], table["ci95_high"])
    table["inside_ci"] = inside.where(table["ci95_low"].notna()).astype(object)
    return table


def task_benchmarks(task: str) -> dict:
    try:
        return dict(tasks.get(task).benchmarks)
    except KeyError as error:
        raise ReferenceError(error.args[0]) from None


def benchmark_from_name(task: str, name: str) -> str:
    """The task's benchmark whose name the file name contains (the longest, so `n64-k8` never reads as `n6`)."""
    found = sorted((b for b in task_benchmarks(task) if b in name), key=len, reverse=True)
    if not found:
        raise ReferenceError(f"{name}: no benchmark of task {task!r} in the file name; pass --benchmark")
    return found[0]


def seed_from_name(name: str) -> int:
    match = re.search(r"seed[_-]?(-?\d+)", name)
    if not match:
        raise ReferenceError(f"{name}: no seed in the file name (like `seed42`); pass --seed")
    return int(match.group(1))


def import_log(path: Path, task: str, strategy: str, protocol: str, source: str,
               benchmark: str | None = None, seed: int | None = None) -> pd.DataFrame:
    """A log's final metrics (its last FINAL_METRICS, else TEST_METRICS line) as reference rows; text values
    (none in the originals' final lines) are left out."""
    benchmark = benchmark or benchmark_from_name(task, path.name)
    if benchmark not in task_benchmarks(task):
        raise ReferenceError(f"{path}: {benchmark!r} is not a benchmark of task {task!r}")
    seed = seed_from_name(path.name) if seed is None else seed
    metrics = final_metrics(parse_log(path.read_text(errors="replace")))
    numbers = {metric: value for metric, value in metrics.items()
               if isinstance(value, (int, float)) and not isinstance(value, bool)}
    if not numbers:
        raise ReferenceError(f"{path}: no FINAL_METRICS or TEST_METRICS line with numbers")
    return pd.DataFrame([{"task": task, "benchmark": benchmark, "strategy": strategy, "protocol": protocol,
                          "seed": str(seed), "metric": metric, "value": value, "source": source}
                         for metric, value in numbers.items()], columns=COLUMNS)


def merge(existing: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Existing rows with the new ones added; a new row replaces an existing one with the same key."""
    kept = existing[~existing.set_index(KEY).index.isin(new.set_index(KEY).index)]
    return pd.concat([kept, new], ignore_index=True)[COLUMNS].sort_values(KEY, kind="stable", ignore_index=True)


def import_logs(args: argparse.Namespace) -> pd.DataFrame:
    new = pd.concat([import_log(path, args.task, args.strategy, args.protocol, args.source, args.benchmark,
                                args.seed) for path in args.logs], ignore_index=True)
    existing = read_reference(args.out) if args.out.exists() else pd.DataFrame(columns=COLUMNS)
    table = merge(existing, new)
    write_csv_atomic(table, args.out)
    return new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optrepro.report.reference", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    importer = commands.add_parser("import",
                                   help="add the final metrics of original-benchmark logs to a reference file")
    importer.add_argument("--task", required=True)
    importer.add_argument("--strategy", required=True, help="the strategy the logs ran (its name in strategies/TASK/)")
    importer.add_argument("--protocol", default="mlsbench", help="the protocol the logs correspond to")
    importer.add_argument("--benchmark", help="benchmark of every log (default: from each file name)")
    importer.add_argument("--seed", type=int, help="seed of every log (default: `seedN` in each file name)")
    importer.add_argument("--source", required=True, help="where the logs come from (shown in the report)")
    importer.add_argument("--out", type=Path, required=True, help="reference CSV to create or extend")
    importer.add_argument("logs", type=Path, nargs="+", metavar="LOG", help="one output file per command and seed")
    args = parser.parse_args(argv)
    try:
        new = import_logs(args)
    except (ReferenceError, OSError) as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 2
    print(f"imported {len(new)} values from {len(args.logs)} log(s) into {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
