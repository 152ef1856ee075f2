"""Where a workflow's time went: Snakemake's own per-job benchmark files (benchmarks/), summed per rule.

    python bench/workflow_time.py [--benchmarks benchmarks]      # after `make quick`, say

Every rule writes `benchmarks/<rule>[/<wildcards>].tsv` (wall seconds `s`, peak memory `max_rss` in MB, CPU
seconds `cpu_time`). Printed per rule, and for `train` per task: jobs, the sum of their wall seconds, the
mean, the longest and the peak memory. Sums of wall time exceed the workflow's own wall time where jobs run
side by side.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path


def read(path: Path) -> dict[str, float]:
    """The first row of one benchmark file as numbers ('NA' as 0)."""
    with path.open() as handle:
        row = next(csv.DictReader(handle, delimiter="\t"))
    return {key: float(value) if value not in ("", "NA", "-") and key != "h:m:s" else 0.0
            for key, value in row.items()}


def groups(root: Path) -> dict[str, list[dict[str, float]]]:
    """Benchmark rows by rule, and train rows also by `train <task>`."""
    found = defaultdict(list)
    for path in sorted(root.rglob("*.tsv")):
        parts = path.relative_to(root).with_suffix("").parts
        row = read(path)
        found[parts[0]].append(row)
        if parts[0] == "train" and len(parts) > 1:
            found[f"train {parts[1]}"].append(row)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", type=Path, default=Path("benchmarks"))
    args = parser.parse_args()
    found = groups(args.benchmarks)
    if not found:
        print(f"no benchmark files under {args.benchmarks}: run the workflow first", file=sys.stderr)
        return 1
    print(f"{'rule':20s} {'jobs':>5s} {'wall s (sum)':>13s} {'mean':>7s} {'longest':>8s} {'peak MB':>8s}")
    for name, rows in sorted(found.items(), key=lambda item: -sum(row["s"] for row in item[1])):
        walls = [row["s"] for row in rows]
        print(f"{name:20s} {len(rows):5d} {sum(walls):13.1f} {sum(walls) / len(walls):7.1f} {max(walls):8.1f} "
              f"{max(row.get('max_rss', 0.0) for row in rows):8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
