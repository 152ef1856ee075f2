"""Per-run jobs against grouped jobs (a cell's seeds in one driver process), side by side through the real workflow.

    python bench/grouped_jobs.py                                   # the toy leaderboard, training only
    python bench/grouped_jobs.py --configfile config/quick.yaml    # `make quick`, the whole workflow to the report

The toy leaderboard is every shipped bilevel strategy x the original's three seeds x both protocols on
`toy-convergence` (its full budget: a run computes for about half a second, so its job is almost all start-up).
Each mode runs the workflow from nothing in a folder of its own (`train_job: run`, then `train_job: cell`), on
every core (`--cores all`), MNIST linked in where the configuration needs it; printed: the jobs, the wall time
of the workflow and its ratio. The two modes' records hold the same numbers (tests/test_grouped.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
TOY_LEADERBOARD = {"scale": "toy-leaderboard", "device": "cpu", "seeds": [42, 123, 456],
                   "tasks": {"bilevel": {"benchmarks": ["toy-convergence"], "protocols": ["mlsbench", "corrected"],
                                         "strategies": "all"}}}


def workflow(configfile: Path, mode: str, until: list[str], data: Path | None) -> tuple[float, int]:
    """Wall seconds and training jobs of one workflow from nothing, training jobs `mode`."""
    with tempfile.TemporaryDirectory(prefix=f"optrepro-bench-{mode}-") as folder:
        workdir = Path(folder)
        config = yaml.safe_load(configfile.read_text())
        config["strategy_dir"] = str(REPO / config.get("strategy_dir", "strategies"))
        if "reference_file" in config.get("report", {}):
            config["report"]["reference_file"] = str(REPO / config["report"]["reference_file"])
        config["train_job"] = mode
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        if data is not None:
            (workdir / "resources").mkdir()
            (workdir / "resources" / "data").symlink_to(data.resolve())
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile"), "--cores",
                        "all", "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), "--quiet",
                        "all", *until], check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        jobs = len(list((workdir / "benchmarks" / "train").rglob("*.tsv")))
    return wall, jobs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", type=Path, help="a workflow configuration (default: the toy leaderboard)")
    parser.add_argument("--data", type=Path, default=REPO / "resources" / "data",
                        help="fetched datasets to link in (default: resources/data)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if args.configfile is None:
            configfile = Path(folder) / "toy-leaderboard.yaml"
            configfile.write_text(yaml.safe_dump(TOY_LEADERBOARD))
            until, name = ["--until", "train_bilevel"], "toy leaderboard (training)"
        else:
            configfile, until, name = args.configfile, [], f"{args.configfile} (to the report)"
        data = args.data if args.data.is_dir() else None
        results = {mode: workflow(configfile, mode, until, data) for mode in ("run", "cell")}
    print(f"{name}, {os.cpu_count()} cores")
    print(f"{'jobs':<22} {'training jobs':>13} {'wall s':>8}")
    for mode, (wall, jobs) in results.items():
        print(f"{'per run' if mode == 'run' else 'per cell (grouped)':<22} {jobs:>13} {wall:>8.1f}")
    print(f"grouped is {results['run'][0] / results['cell'][0]:.2f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
