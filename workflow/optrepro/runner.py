"""Run one task x benchmark x strategy x seed x protocol and record it: the `train` rule's script.

`python -m optrepro.runner --task parity --benchmark n32-k8 --protocol mlsbench
--strategy strategies/parity/default.py --seed 42 --run-dir results/runs/...`

The driver runs as a subprocess; its stdout becomes `run.log` and the run
record `record.json` is written last, both atomically. A run that fails
(bad strategy, bad input, a crash of the driver) is a result: its record says
`failed` with the driver's `ERROR:` line (or `diverged: ...` where a loss or
the score is not finite) and this script exits 0 so the
workflow goes on. Only a driver killed by a signal (a cancelled or
preempted job) leaves no record and exits non-zero, so the workflow reruns it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from .data import read_status, status_path
from .files import write_json_atomic
from .metrics import divergence, final_metrics, parse_log, truncations
from .provenance import device_info, run_record


def driver_command(args: argparse.Namespace, device: str) -> list[str]:
    command = [sys.executable, "-m", f"optrepro.tasks.{args.task}", "--benchmark", args.benchmark,
               "--strategy", args.strategy, "--seed", str(args.seed), "--protocol", args.protocol,
               "--device", device]
    for override in args.overrides:
        command += ["--set", override]
    return command


def failure_reason(returncode: int, stderr_lines: list[str], has_metrics: bool) -> str | None:
    """The driver's own `ERROR:` line, else its last stderr line, else what is missing."""
    errors = [line.removeprefix("ERROR:").strip() for line in stderr_lines if line.startswith("ERROR:")]
    if errors:
        return errors[-1]
    if returncode != 0:
        tail = [line for line in stderr_lines if line.strip()]
        return f"driver exited with status {returncode}" + (f": {tail[-1].strip()}" if tail else "")
    return None if has_metrics else "driver printed no FINAL_METRICS/TEST_METRICS line"


def unavailable_data(data_root: str, datasets: list[str]) -> str | None:
    """Why a dataset the run needs is not there (its fetch failed), or None when all are ready."""
    for name in datasets:
        status = read_status(status_path(data_root, name))
        if status.get("status") != "ok":
            return f"dataset {name} unavailable: {status.get('error')}"
    return None


def run_driver(command: list[str], log_path: Path, data_root: str) -> tuple[int, list[str]]:
    """Run the driver with stdout to `log_path`; its stderr goes to the job log and is returned."""
    # The driver imports the same optrepro package as this script, wherever it was started from.
    package_parent = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONUNBUFFERED="1", DATA_ROOT=str(Path(data_root).resolve()),
               PYTHONPATH=os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])))
    with open(log_path, "w") as stdout:
        process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env)
        stderr_lines = []
        for line in process.stderr:  # pass through to the job log, keep for the record
            sys.stderr.write(line)
            stderr_lines.append(line.rstrip("\n"))
        return process.wait(), stderr_lines


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = device_info(args.device)
    command = driver_command(args, device["resolved"])
    started, start_clock = datetime.now(timezone.utc), time.monotonic()
    log_tmp = run_dir / ".run.log.tmp"
    missing_data = unavailable_data(args.data_root, args.datasets)
    if missing_data:  # a failed fetch is this run's result; the driver does not start
        log_tmp.write_text("")
        returncode, stderr_lines = 0, [f"ERROR: {missing_data}"]
    else:
        returncode, stderr_lines = run_driver(command, log_tmp, args.data_root)
    wall = time.monotonic() - start_clock
    if returncode < 0:
        print(f"driver killed by signal {-returncode}; no record written", file=sys.stderr)
        return 1
    log_text = log_tmp.read_text()
    parsed = parse_log(log_text)
    metrics = final_metrics(parsed)
    task_config = next((line.fields for line in parsed if line.kind == "TASK_CONFIG"), None)
    error = failure_reason(returncode, stderr_lines, bool(metrics)) or divergence(parsed)
    identity = {"task": args.task, "benchmark": args.benchmark, "strategy": Path(args.strategy).stem,
                "seed": args.seed, "protocol": args.protocol, "scale": args.scale}
    record = run_record(
        identity, error, metrics, strategy_path=args.strategy,
        data_paths=[] if missing_data else [Path(args.data_root, name) for name in args.datasets],
        config={"workflow": json.loads(args.config), "overrides": args.overrides, "task_config": task_config},
        command=command[1:], exit_status=returncode, device=device, started=started, wall_seconds=wall,
        notes=truncations(parsed))
    os.replace(log_tmp, run_dir / "run.log")
    write_json_atomic(run_dir / "record.json", record)
    print(f"{record['status']}: {args.task}/{args.protocol}/{args.benchmark}/{record['strategy']}/seed{args.seed}"
          f" in {wall:.1f}s" + (f" ({error})" if error else ""), file=sys.stderr)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m optrepro.runner", description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--benchmark", required=True)
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--strategy", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--scale", default="full", help="label of the configuration's scale (quick, full, ...)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--data-root", default="resources/data",
                        help="folder of the fetched datasets (the driver's DATA_ROOT)")
    parser.add_argument("--dataset", dest="datasets", action="append", default=[],
                        help="a dataset the run reads: checked to be fetched, its files hashed into the record")
    parser.add_argument("--config", default="{}", help="the workflow configuration of this run, as JSON")
    parser.add_argument("--run-dir", required=True)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run(parse_args()))
