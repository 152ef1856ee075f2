"""Turn run folders (record.json + run.log) into tidy tables: the `collect` rule's script.

`python -m optrepro.collect --runs results/tables/runs.csv --curves results/tables/curves.csv RUN_DIR...`

* runs.csv: one row per run: identity, status and error, provenance columns,
  and one column per final metric;
* curves.csv: every line a run prints more than once, in long format: identity,
  the line's kind (TRAIN_METRICS: parity/bilevel steps, DP-SGD batches and the
  1000 toy starts; EPOCH: DP-SGD's end-of-epoch line; RUN_METRICS: parity's
  per-run test accuracy), its index fields (secret, order, run, epoch, step),
  then metric and value.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .files import write_csv_atomic
from .metrics import parse_log
from .tasks import find

if TYPE_CHECKING:
    import pandas as pd

IDENTITY = ["task", "protocol", "benchmark", "strategy", "seed", "scale"]
INDEX_FIELDS = ["secret", "order", "run", "epoch", "step"]
# Line kinds that go to curves.csv, each with the fields that are neither index nor metric (`Epoch 3/5`: 5).
CURVE_KINDS = {"TRAIN_METRICS": (), "EPOCH": ("epochs",), "RUN_METRICS": ()}
CURVE_COLUMNS = IDENTITY + ["kind"] + INDEX_FIELDS + ["metric", "value"]
PROVENANCE = ["status", "error", "full_budget", "wall_seconds", "device", "device_name", "strategy_sha256",
              "driver_sha256", "data_sha256", "git_commit", "git_dirty", "python", "torch", "packages", "host", "start",
              "end", "run_dir", "notes", "sandbox"]
RUN_COLUMNS = IDENTITY + PROVENANCE  # runs.csv's own columns; a run's metrics come after them and never among them


def data_digest(hashes: dict[str, str]) -> str:
    """One short label for a run's data: its files' hashes, combined in name order ('' for no data)."""
    if not hashes:
        return ""
    return hashlib.sha256("".join(f"{k}={v};" for k, v in sorted(hashes.items())).encode()).hexdigest()


def package_versions(packages: dict[str, str | None]) -> str:
    """All recorded package versions as one comparable label: `numpy=2.4.6 torch=2.14.1 ...` (name order)."""
    return " ".join(f"{name}={version or '-'}" for name, version in sorted(packages.items()))


def column_clashes(metrics: dict[str, object]) -> str | None:
    """Why a run's final metrics cannot be tabled: names of runs.csv's own columns (a run printing `status=ok`
    must not overwrite its status). The runner fails such runs; collect fails a record written otherwise."""
    clashes = sorted(set(metrics) & set(RUN_COLUMNS))
    return f"metric names that are runs.csv columns: {', '.join(clashes)}" if clashes else None


def full_budget(record: dict) -> bool:
    """Whether a run ran its benchmark's own budget, whatever the configuration's scale label: its recorded scale
    overrides change nothing for it (TaskSpec.full_budget); for a task this checkout does not know, none given."""
    overrides = record["config"]["overrides"]
    spec = find(record["task"])
    if spec is None or record["benchmark"] not in spec.benchmarks or record["protocol"] not in spec.protocols:
        return not overrides
    return spec.full_budget(record["benchmark"], record["protocol"], overrides)


def run_row(record: dict, run_dir: Path) -> dict[str, object]:
    row = {key: record.get(key) for key in IDENTITY}
    row.update({
        "status": record["status"], "error": record.get("error") or "", "full_budget": full_budget(record),
        "wall_seconds": record.get("wall_seconds"),
        "device": record["device"]["resolved"], "device_name": record["device"]["name"],
        "strategy_sha256": record["hashes"]["strategy"], "driver_sha256": record["hashes"]["driver"],
        "data_sha256": data_digest(record["hashes"]["data"]), "git_commit": record["git"]["commit"],
        "git_dirty": record["git"]["dirty"], "python": record["environment"]["python"],
        "torch": record["environment"]["packages"].get("torch"),
        "packages": package_versions(record["environment"]["packages"]), "host": record["environment"]["host"],
        "start": record.get("start"), "end": record.get("end"), "run_dir": str(run_dir),
        "notes": "; ".join(record.get("notes", [])), "sandbox": record.get("sandbox", ""),
    })
    if clash := column_clashes(record["metrics"]):
        return {**row, "status": "failed", "error": clash}
    row.update(record["metrics"])
    return row


def unreadable_row(run_dir: Path, error: Exception) -> dict[str, object]:
    """The failed row of a run folder whose record or log cannot be read: its identity from the folder's path
    (results/runs/{task}/{protocol}/{benchmark}/{strategy}/seed{seed}), the scale unknown."""
    parts = run_dir.parts[-5:]
    task, protocol, benchmark, strategy, seed = parts if len(parts) == 5 else ("",) * 5
    seed = seed.removeprefix("seed")
    identity = dict(zip(IDENTITY, (task, protocol, benchmark, strategy, int(seed) if seed.isdigit() else seed,
                                   "unknown")))
    return {**identity, **dict.fromkeys(PROVENANCE, ""), "status": "failed", "full_budget": False,
            "run_dir": str(run_dir),
            "error": f"unreadable run folder: {type(error).__name__}: {error}"}


def curve_rows(record: dict, log_text: str) -> list[dict[str, object]]:
    identity = {key: record.get(key) for key in IDENTITY}
    rows = []
    for line in parse_log(log_text):
        if line.kind not in CURVE_KINDS:
            continue
        index = {key: line.fields.get(key) for key in INDEX_FIELDS}
        skip = set(INDEX_FIELDS) | set(CURVE_KINDS[line.kind])
        rows.extend({**identity, "kind": line.kind, **index, "metric": metric, "value": value}
                    for metric, value in line.fields.items() if metric not in skip)
    return rows


def collect(run_dirs: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every run folder as a row (one that cannot be read as that run's failed row) and its curve points."""
    import pandas as pd

    runs, curves = [], []
    for run_dir in run_dirs:
        try:
            record = json.loads((run_dir / "record.json").read_text())
            row, points = run_row(record, run_dir), curve_rows(record, (run_dir / "run.log").read_text())
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            row, points = unreadable_row(run_dir, error), []
        runs.append(row)
        curves.extend(points)
    runs_table = pd.DataFrame(runs, columns=None if runs else RUN_COLUMNS)
    curves_table = pd.DataFrame(curves, columns=CURVE_COLUMNS)
    return runs_table.sort_values(IDENTITY, kind="stable"), curves_table


def write_tables(run_dirs: list[Path], runs_csv: Path, curves_csv: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs, curves = collect(run_dirs)
    write_csv_atomic(runs, runs_csv)
    write_csv_atomic(curves, curves_csv)
    print(f"collected {len(runs)} runs ({int((runs['status'] != 'ok').sum()) if len(runs) else 0} failed), "
          f"{len(curves)} curve points", file=sys.stderr)
    return runs, curves


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optrepro.collect", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="output runs.csv")
    parser.add_argument("--curves", type=Path, required=True, help="output curves.csv")
    parser.add_argument("--run-list", type=Path, help="file naming one run folder a line (added to RUN_DIRS)")
    parser.add_argument("run_dirs", type=Path, nargs="*", help="folders holding record.json and run.log")
    args = parser.parse_args(argv)
    listed = [Path(line) for line in args.run_list.read_text().splitlines() if line.strip()] if args.run_list else []
    write_tables([*listed, *args.run_dirs], args.runs, args.curves)
    return 0


if __name__ == "__main__":
    sys.exit(main())
