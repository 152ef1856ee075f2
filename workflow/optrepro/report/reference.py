"""Reference numbers (the original benchmark's, a paper's) beside the reproduced ones, and their importers.

A reference file is a CSV with the columns of `COLUMNS`: one value per task,
benchmark, strategy, protocol, seed (or `mean` for an already averaged value),
metric, and where it comes from. A value is the text as the original printed
it (its precision is what a reproduction is judged at), or `failed` for a run
of the original that printed no number. The report compares a cell's
reproduced mean with the reference: the `mean` row when there is one, else the
mean of the reference seeds that did not fail; the difference, and whether the
reference lies inside the reproduced 95% CI.

Two importers write such files, each value with the decimals the task's driver prints it with (TaskSpec.decimals).
`import` reads logs of the original benchmark, one output file per command and seed, in the line formats of the
original benchmarks (docs/tasks/*.md) (optrepro.metrics parses them):

`python -m optrepro.report.reference import --task parity --strategy default --protocol mlsbench
--source "original benchmark, commit abc" --out reference.csv [--benchmark n32-k8] [--seed 42] LOG...`

Without --benchmark/--seed they are read from each log's file name (`n32-k8_seed42.log`).
`leaderboard` reads the original's public leaderboard files (MLS-Bench website data,
`public/data/leaderboards/<task id>.json`; references/README.md has the command that made mlsbench.csv).
Rows already in --out are kept unless the import replaces them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pandas as pd

from .. import tasks
from ..files import write_csv_atomic
from ..metrics import final_metrics, format_value, parse_log

KEY = ["task", "benchmark", "strategy", "protocol", "seed", "metric"]
COLUMNS = KEY + ["value", "source"]
CELL = ["task", "protocol", "benchmark", "strategy", "metric"]
MEAN = "mean"
FAILED = "failed"  # the value of a run of the original that printed no number
BASELINE = "baseline:"  # how the leaderboard names a baseline strategy: `baseline:<strategy>`


class ReferenceError(ValueError):
    """A reference file or log that cannot be used, with what is wrong in it."""


def reference_path(config: dict) -> Path | None:
    """The validated configuration's `report.reference_file` (optional), relative to the working folder or
    absolute."""
    name = config["report"].get("reference_file")
    return Path(name) if name else None


def read_reference(path: str | Path) -> pd.DataFrame:
    """Read and check a reference file: every column present, seeds integers or `mean`, values numbers or `failed`
    (NaN in `value`); the text as printed is kept in `printed`: its precision is what a reproduction is judged at."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in COLUMNS if column not in table.columns]
    if missing:
        raise ReferenceError(f"{path}: missing columns {missing} (expected {', '.join(COLUMNS)})")
    table = table[COLUMNS]
    value = pd.to_numeric(table["value"], errors="coerce")
    bad_value = value.isna() & (table["value"].str.strip() != FAILED)
    bad_seed = ~table["seed"].str.fullmatch(rf"-?\d+|{MEAN}")
    for label, bad in ((f"value is not a number or '{FAILED}'", bad_value),
                       (f"seed is not an integer or '{MEAN}'", bad_seed)):
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
                     "reference_seeds": MEAN if len(mean_rows) else str(used["value"].notna().sum()),
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


def task_spec(task: str) -> tasks.TaskSpec:
    try:
        return tasks.get(task)
    except KeyError as error:
        raise ReferenceError(error.args[0]) from None


def task_benchmarks(task: str) -> dict:
    return dict(task_spec(task).benchmarks)


def printed(task: str, metric: str, value: float) -> str:
    """A value as the task's driver prints it: its own decimals (an integer metric as an integer)."""
    decimals = task_spec(task).decimals(metric)
    return format_value(round(value) if decimals == 0 else float(value), decimals)


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
                          "seed": str(seed), "metric": metric, "value": printed(task, metric, value), "source": source}
                         for metric, value in numbers.items()], columns=COLUMNS)


def leaderboard_task(path: Path, board: dict) -> str:
    """The registered task whose `leaderboard_id` is the file's `task_id`."""
    found = [name for name in tasks.registered() if tasks.get(name).leaderboard_id == board.get("task_id")]
    if not found:
        raise ReferenceError(f"{path}: task_id {board.get('task_id')!r} is the leaderboard id of no registered task")
    return found[0]


def column_metric(task: str, column: str) -> tuple[str, str] | None:
    """(benchmark, metric) of a leaderboard column `<metric>_<benchmark>`, the benchmark written as the task names
    it or with `_` for `-` (the longest that fits); None for another column."""
    labels = [(label, benchmark) for benchmark in task_benchmarks(task) for label in {benchmark,
                                                                                       benchmark.replace("-", "_")}]
    for label, benchmark in sorted(labels, key=lambda pair: len(pair[0]), reverse=True):
        if column.endswith(f"_{label}") and len(column) > len(label) + 1:
            return benchmark, column[: -len(label) - 1]
    return None


def leaderboard_rows(path: Path, source: str) -> tuple[pd.DataFrame, list[str]]:
    """A leaderboard file's final baseline seed rows as reference rows under `mlsbench`, and what was left out.
    Per seed and benchmark: every metric column the task's driver prints a method's result in (its
    machine-dependent ones left out), the value at the driver's decimals; a seed and benchmark with a wall time
    and no values is a failed run of the original (every metric `failed`); one with neither was not run. The
    leaderboard's `mean` rows (means of the seeds that have values) and `_std` columns are left out."""
    try:
        board = json.loads(path.read_text())
        board_rows, metric_columns = board["rows"], board["metric_columns"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ReferenceError(f"{path}: not a leaderboard file ({type(error).__name__}: {error})") from None
    task = leaderboard_task(path, board)
    skipped = task_spec(task).machine_dependent
    columns = {column: found for column in metric_columns if (found := column_metric(task, column))
               and found[1] not in skipped}
    rows, left_out = [], []
    for entry in board_rows:
        model, seed = str(entry.get("model", "")), str(entry.get("seed", ""))
        if not (model.startswith(BASELINE) and entry.get("is_final") and seed.lstrip("-").isdigit()):
            left_out.append(f"{model} seed {seed}" + ("" if entry.get("is_final") else " (not final)"))
            continue
        for benchmark in task_benchmarks(task):
            mine = {metric: entry.get(column) for column, (b, metric) in columns.items() if b == benchmark}
            ran = any(entry.get(f"elapsed_{label}") is not None for label in (benchmark, benchmark.replace("-", "_")))
            if not any(value is not None for value in mine.values()) and not ran:
                continue
            failed = all(value is None for value in mine.values())
            rows += [{"task": task, "benchmark": benchmark, "strategy": model.removeprefix(BASELINE),
                      "protocol": "mlsbench", "seed": seed, "metric": metric,
                      "value": FAILED if failed else printed(task, metric, value), "source": f"{source}, {path.name}"}
                     for metric, value in mine.items() if failed or value is not None]
    return pd.DataFrame(rows, columns=COLUMNS), left_out


def merge(existing: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Existing rows with the new ones added; a new row replaces an existing one with the same key."""
    kept = existing[~existing.set_index(KEY).index.isin(new.set_index(KEY).index)]
    return pd.concat([kept, new], ignore_index=True)[COLUMNS].sort_values(KEY, kind="stable", ignore_index=True)


def import_rows(args: argparse.Namespace) -> tuple[pd.DataFrame, list[str]]:
    """The new rows of either importer, and what it left out."""
    if args.command == "leaderboard":
        read = [leaderboard_rows(path, args.source) for path in args.files]
        return pd.concat([rows for rows, _ in read], ignore_index=True), [item for _, out in read for item in out]
    return pd.concat([import_log(path, args.task, args.strategy, args.protocol, args.source, args.benchmark, args.seed)
                      for path in args.files], ignore_index=True), []


def import_files(args: argparse.Namespace) -> tuple[pd.DataFrame, list[str]]:
    new, left_out = import_rows(args)
    existing = pd.DataFrame(columns=COLUMNS)
    if args.out.exists():  # kept as printed
        existing = read_reference(args.out).pipe(lambda table: table.assign(value=table["printed"]))[COLUMNS]
    write_csv_atomic(merge(existing, new), args.out)
    return new, left_out


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
    importer.add_argument("files", type=Path, nargs="+", metavar="LOG", help="one output file per command and seed")
    board = commands.add_parser("leaderboard", help="add the baseline seed rows of public leaderboard files")
    board.add_argument("files", type=Path, nargs="+", metavar="JSON",
                       help="public/data/leaderboards/<task id>.json of the MLS-Bench website repository")
    for command in (importer, board):
        command.add_argument("--source", required=True, help="where the files come from (shown in the report)")
        command.add_argument("--out", type=Path, required=True, help="reference CSV to create or extend")
    args = parser.parse_args(argv)
    try:
        new, left_out = import_files(args)
    except (ReferenceError, OSError) as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 2
    failed = int((new["value"] == FAILED).sum())
    print(f"imported {len(new)} values ({failed} of failed runs) from {len(args.files)} file(s) into {args.out}"
          + (f"; left out: {', '.join(left_out)}" if left_out else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
