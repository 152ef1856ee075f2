"""Run one task x benchmark x strategy x seed x protocol and record it: the `train` rule's script.

`python -m optrepro.runner --task parity --benchmark n32-k8 --protocol mlsbench
--strategy strategies/parity/default.py --seed 42 --run-dir results/runs/...`

The driver runs as a subprocess in its own process group; its stdout becomes
`run.log` and the run record `record.json` is written last, both atomically.
A run that fails is a result: its record says `failed` with the reason and
this script exits 0 so the workflow goes on. Reasons: the driver's `ERROR:`
line (bad strategy, bad input); `diverged: ...` where a loss or the score is
not finite; `timed out after N s` past the time limit (the driver's whole group
is ended); `killed by SIGKILL (out of memory?)`, `interrupted` or
`killed by SIG...` when the driver died of a signal while this script was
alive (the strategy's own doing: memory, a KeyboardInterrupt, os.kill).

Only when this script itself is stopped (SIGTERM or SIGINT: `scancel`,
Ctrl-C, a job killed from outside) does it end the driver's group, write no
record and exit non-zero, so that the workflow reruns the job. The driver
never outlives it: it is ended on those signals, and the kernel ends it
(parent-death signal) if this script is killed outright.

This script imports no torch (it waits beside every training job): the driver
resolves `--device auto` itself and names the device on stderr, which the
record keeps (`device.DEVICE_LINE`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from .collect import column_clashes
from .data.manifest import DATA_ROOT_ENV, DataError, hashes_now, read_status, status_path
from .device import DEVICE_ENV, REQUESTS, device_from_stderr, uses_cuda
from .files import clear, write_json_atomic, write_text_atomic
from .metrics import divergence, final_metrics, parse_log, truncations
from .provenance import run_record
from .sandbox import (
    MODES,
    SANDBOX_ENV,
    SandboxError,
    become_subreaper,
    child_env,
    code_paths,
    death_reason,
    die_with_parent,
    end_descendants,
    undumpable,
    unwrapped_status,
    wrap,
)
from .tasks import external_files, get

GRACE_S = 5  # between SIGTERM and SIGKILL when the driver's group is ended

# What the runner writes in a run directory, last and whatever a run left at these names.
OUTPUTS = ("run.log", "record.json")


class Stopped(Exception):
    """This script was told to stop (SIGTERM, SIGINT): no record, a non-zero exit, the job reruns."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def stop(signum: int, frame: object) -> None:
    raise Stopped(signum)


@dataclass
class Outcome:
    returncode: int
    stderr_lines: list[str]
    timed_out: bool = False


def driver_command(args: argparse.Namespace) -> list[str]:
    """The driver's command line; it resolves `--device auto` itself and says what it chose (DEVICE_LINE)."""
    command = [sys.executable, "-m", "optrepro.tasks", args.task, "--benchmark", args.benchmark,
               "--strategy", args.strategy, "--seed", str(args.seed), "--protocol", args.protocol,
               "--device", args.device]
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


def end_group(process: subprocess.Popen) -> None:
    """SIGTERM to the driver's whole process group, SIGKILL after GRACE_S; waits for the driver."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=GRACE_S)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait()


def unavailable_data(data_root: str, datasets: list[str]) -> str | None:
    """Why a dataset the run needs cannot be used: its fetch failed, or a file changed since the fetch verified
    it; None when all are ready. A dataset fetched by hand (`python -m optrepro.data fetch` without `--status`)
    has no status file: its manifest alone decides."""
    for name in datasets:
        path = status_path(data_root, name)
        status = read_status(path) if path.exists() else {}
        if status.get("status", "ok") != "ok":
            return f"dataset {name} unavailable: {status.get('error')}"
        try:
            _, changed = hashes_now(data_root, name)
        except DataError as error:
            return str(error)
        if changed:
            return f"dataset {name} changed after fetch: {', '.join(changed)}"
    return None


def data_after_run(data_root: str, datasets: list[str]) -> tuple[dict[str, str], list[str]]:
    """The sha256 of the dataset files the run read, by path, and a note per dataset that changed meanwhile."""
    hashes, notes = {}, []
    for name in datasets:
        now, changed = hashes_now(data_root, name)
        hashes.update({str(Path(data_root, name, relative)): digest for relative, digest in now.items()})
        if changed:
            notes.append(f"dataset {name} differs from its fetched manifest after the run: {', '.join(changed)}")
    return hashes, notes


def run_driver(command: list[str], stdout: IO[str], data_root: str, time_limit: float, sandboxed: bool,
               sandbox_mode: str) -> Outcome:
    """Run the driver with stdout to `stdout`, its stderr to the job log (and returned), for at most
    `time_limit` seconds; raises Stopped, after ending the driver's group, when this script is told to stop."""
    env = child_env(**{DATA_ROOT_ENV: str(Path(data_root).resolve()), DEVICE_ENV: "1", SANDBOX_ENV: sandbox_mode})
    stderr_lines: list[str] = []
    process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True, preexec_fn=die_with_parent)

    def pump() -> None:  # pass stderr through to the job log, keep it for the record
        for line in process.stderr:
            sys.stderr.write(line)
            stderr_lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        returncode, timed_out = process.wait(timeout=time_limit), False
    except subprocess.TimeoutExpired:
        end_group(process)
        returncode, timed_out = process.returncode, True
    except Stopped:
        end_group(process)
        raise
    reader.join(timeout=GRACE_S)
    return Outcome(unwrapped_status(returncode, sandboxed), stderr_lines, timed_out)


def run(args: argparse.Namespace, end_leftovers: bool = False) -> int:
    """One run, its record written last; `end_leftovers` (the command line's): before that, end every process
    the run left (this process is then their subreaper, so double-forked daemons too)."""
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    command = driver_command(args)
    started, start_clock = datetime.now(timezone.utc), time.monotonic()
    # A file without a name, which this process (not dumpable) holds: the driver writes it through its stdout;
    # nothing the driver starts finds it by a path, nor, sandboxed or confined, through /proc (on a bare host as
    # root it can: docs/failures.md). The run directory, which the driver may write, is not trusted.
    log = tempfile.TemporaryFile("w+", encoding="utf-8", prefix="optrepro-run-log-")
    missing_data = unavailable_data(args.data_root, args.datasets)
    sandbox, sandbox_note = "none", None
    try:
        read_only = [Path(args.strategy), *code_paths(*external_files(args.task)),
                     *([Path(args.data_root)] if args.datasets else [])]
        wrapped, sandbox, sandbox_note = wrap(command, args.sandbox, run_dir, read_only, uses_cuda(args.device),
                                              Path.cwd(), hidden=[Path.cwd() / "results"])
    except SandboxError as error:
        missing_data = missing_data or str(error)
    if missing_data:  # a failed fetch (or a sandbox that cannot run) is this run's result; the driver does not start
        outcome = Outcome(0, [f"ERROR: {missing_data}"])
    else:
        try:
            outcome = run_driver(wrapped, log, args.data_root, args.time_limit, sandbox == "bwrap", args.sandbox)
        except Stopped as stopped:
            if end_leftovers:
                end_descendants()
            print(f"runner stopped by {stopped}: driver ended, no record written", file=sys.stderr)
            return 128 + stopped.signum
    if end_leftovers:
        end_descendants()  # nothing the run started may touch its record after this
    wall = time.monotonic() - start_clock
    returncode = outcome.returncode
    log.seek(0)
    log_text = log.read()
    log.close()
    parsed = parse_log(log_text)
    metrics = final_metrics(parsed)
    task_config = next((line.fields for line in parsed if line.kind == "TASK_CONFIG"), None)
    if outcome.timed_out:
        error = f"timed out after {args.time_limit:g} s"
    else:
        error = (death_reason(returncode) or failure_reason(returncode, outcome.stderr_lines, bool(metrics))
                 or divergence(parsed) or column_clashes(metrics) or get(args.task).out_of_range(metrics))
    identity = {"task": args.task, "benchmark": args.benchmark, "strategy": Path(args.strategy).stem,
                "seed": args.seed, "protocol": args.protocol, "scale": args.scale}
    data_hashes, data_notes = ({}, []) if missing_data else data_after_run(args.data_root, args.datasets)
    record = run_record(
        identity, error, metrics, strategy_path=args.strategy, data_hashes=data_hashes,
        config={"workflow": json.loads(args.config), "overrides": args.overrides, "task_config": task_config},
        command=command[1:], exit_status=returncode,
        device=device_from_stderr(outcome.stderr_lines, args.device), started=started, wall_seconds=wall,
        notes=truncations(parsed) + data_notes + ([sandbox_note] if sandbox_note else []), sandbox=sandbox)
    for name in OUTPUTS:  # the runner's own files, whatever a run left at their names (a folder, a link)
        clear(run_dir / name)
    write_text_atomic(run_dir / "run.log", log_text)
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
    parser.add_argument("--device", default="auto", choices=REQUESTS)
    parser.add_argument("--scale", default="full", help="label of the configuration's scale (quick, full, ...)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--data-root", required=True, help="folder of the fetched datasets (the driver's DATA_ROOT)")
    parser.add_argument("--dataset", dest="datasets", action="append", default=[],
                        help="a dataset the run reads: checked to be fetched, its files hashed into the record")
    parser.add_argument("--config", default="{}", help="the workflow configuration of this run, as JSON")
    parser.add_argument("--time-limit", type=float, metavar="SECONDS", required=True,
                        help="end the driver and record a failed run past this (the plan's time_limit)")
    parser.add_argument("--sandbox", default="auto", choices=MODES,
                        help="run the driver under bubblewrap: auto (where it works), bwrap (required), none")
    parser.add_argument("--run-dir", required=True)
    return parser.parse_args(argv)


def main() -> int:
    parent = os.getppid()
    die_with_parent()  # a job's shell killed outright (kill -9) takes the runner along: no late record
    if os.getppid() != parent:
        return 128 + signal.SIGKILL  # the parent was gone before that took hold
    become_subreaper()
    undumpable()  # what it holds (the driver's log) is out of reach of the driver's processes through /proc
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    return run(parse_args(), end_leftovers=True)


if __name__ == "__main__":
    sys.exit(main())
