"""Run the seeds of one task x protocol x benchmark x strategy (a cell) and record each: the train rules' script.

`python -m optrepro.runner --task parity --benchmark n32-k8 --protocol mlsbench
--strategy strategies/parity/default.py --seed 42 --run-dir results/runs/.../seed42
--seed 123 --run-dir results/runs/.../seed123`

The driver runs as a subprocess in its own process group and trains the seeds
in turn, paying its start-up (interpreter, imports, device; the data check) once, each
run with its strategy in a new process (optrepro.tasks.cli). It frames each
run's lines (metrics.begin_mark): the run's stdout becomes its `run.log` and
its record `record.json` is written last, both atomically. Each run has the
time limit to itself (the first, the driver's start-up too); a run that times
out or in which the driver dies ends only itself: the seeds after it start
in a new driver process.
A run that fails is a result: its record says `failed` with the reason and
this script exits 0 so the workflow goes on. Reasons: the driver's `ERROR:`
line (bad strategy, bad input); `diverged: ...` where a loss or the score is
not finite; `timed out after N s` past the time limit (the driver's whole group
is ended); `killed by SIGKILL (out of memory?)`, `interrupted` or
`killed by SIG...` when the driver died of a signal while this script was
alive (the strategy's own doing: memory, a KeyboardInterrupt, os.kill).

Only when this script itself is stopped (SIGTERM or SIGINT: `scancel`,
Ctrl-C, a job killed from outside) does it end the driver's group, write no
record for the runs not yet recorded and exit non-zero, so that the workflow reruns the job. The driver
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
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .collect import column_clashes
from .data.manifest import DATA_ROOT_ENV, DataError, hashes_now, read_status, status_path
from .device import DEVICE_ENV, REQUESTS, device_from_stderr, uses_cuda
from .files import clear, write_json_atomic, write_text_atomic
from .metrics import begun_seed, divergence, ended_run, final_metrics, parse_log, split_runs, truncations
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
POLL_S = 0.2  # how often a driver that printed nothing is checked for having ended

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
    """How one run of a driver process ended, with its own stdout (`log_text`) and stderr lines (the lines the
    process printed before its first run, e.g. its device, then the run's)."""

    returncode: int
    stderr_lines: list[str]
    started: datetime
    wall_seconds: float
    log_text: str = ""
    timed_out: bool = False


def seed_options(seeds: list[int]) -> list[str]:
    return [option for seed in seeds for option in ("--seed", str(seed))]


def driver_command(args: argparse.Namespace, seeds: list[int]) -> list[str]:
    """The driver's command line for `seeds`, trained in turn in one process; it resolves `--device auto` itself
    and says what it chose (DEVICE_LINE)."""
    command = [sys.executable, "-m", "optrepro.tasks", args.task, "--benchmark", args.benchmark,
               "--strategy", args.strategy, *seed_options(seeds), "--protocol", args.protocol,
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


class Runs:
    """The runs of one driver process, followed through its stderr lines (metrics.begin_mark, end_mark)."""

    def __init__(self, seeds: list[int]):
        self.seeds = seeds
        self.shared: list[str] = []  # printed before the first run (the device): every run's
        self.lines: dict[int, list[str]] = {}
        self.begun: dict[int, tuple[datetime, float]] = {}  # when, on both clocks, each run's time began
        self.ended: dict[int, tuple[int, float]] = {}  # exit status and monotonic time
        self.current: int | None = None
        self.since = (datetime.now(timezone.utc), time.monotonic())  # the end of the last run, or the start

    def take(self, line: str) -> None:
        seed = begun_seed(line)
        end = ended_run(line)
        if seed in self.seeds and seed not in self.lines:
            self.current, self.lines[seed], self.begun[seed] = seed, [], self.since
        elif self.current is not None and end and end[0] == self.current:
            self.since = (datetime.now(timezone.utc), time.monotonic())
            self.ended[self.current] = (end[1], self.since[1])
            self.current = None
        else:
            (self.lines[self.current] if self.current is not None else self.shared).append(line)

    def outcomes(self, status: int, timed_out: bool, logs: dict[int | None, str]) -> dict[int, Outcome]:
        """Every run that ended, and the one that did not: the one under way, else the next (the process ended
        or timed out between runs); every seed, when none began."""
        now = time.monotonic()
        if not self.begun:
            started, clock = self.since
            return {seed: Outcome(status, self.shared, started, now - clock, logs[None], timed_out)
                    for seed in self.seeds}
        unfinished = self.current if self.current is not None else next(
            (seed for seed in self.seeds if seed not in self.begun), None)
        if unfinished is not None and unfinished not in self.begun:
            self.lines[unfinished], self.begun[unfinished] = [], self.since
        outcomes = {}
        for seed, (started, clock) in self.begun.items():
            returncode, finished = self.ended.get(seed, (status, now))
            outcomes[seed] = Outcome(returncode, self.shared + self.lines[seed], started, finished - clock,
                                     logs.get(seed, ""), timed_out and seed not in self.ended)
        return outcomes


def run_driver(command: list[str], seeds: list[int], data_root: str, time_limit: float, sandboxed: bool,
               sandbox_mode: str) -> dict[int, Outcome]:
    """Start the driver on `seeds` and follow its runs (stderr passed to the job log, and kept), each run given
    `time_limit` seconds from the end of the one before (the first: from the start); returns the outcome of every
    run that ended and of the one that did not (Runs.outcomes); the seeds after that one are left to a new
    process. Raises Stopped, after ending the driver's group, when this script is told to stop."""
    env = child_env(**{DATA_ROOT_ENV: str(Path(data_root).resolve()), DEVICE_ENV: "1", SANDBOX_ENV: sandbox_mode})
    # A file without a name, which this process (not dumpable) holds: the driver writes it through its stdout;
    # nothing the driver starts finds it by a path, nor, sandboxed or confined, through /proc (on a bare host as
    # root it can: docs/failures.md). The run directory, which the driver may write, is not trusted.
    stdout = tempfile.TemporaryFile("w+", encoding="utf-8", prefix="optrepro-run-log-")
    runs = Runs(seeds)
    process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True, preexec_fn=die_with_parent)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:  # pass stderr through to the job log, keep it for the records
        for line in process.stderr:
            sys.stderr.write(line)
            lines.put(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        while process.poll() is None:
            remaining = runs.since[1] + time_limit - time.monotonic()
            if remaining <= 0:
                end_group(process)
                timed_out = True
                break
            try:
                runs.take(lines.get(timeout=min(remaining, POLL_S)))
            except queue.Empty:
                continue
    except Stopped:
        end_group(process)
        raise
    if not timed_out:  # what it printed last (a stderr held open by what it left is not waited for)
        reader.join(timeout=GRACE_S)
        while not lines.empty():
            runs.take(lines.get())
    stdout.seek(0)
    logs = split_runs(stdout.read())
    stdout.close()
    return runs.outcomes(unwrapped_status(process.wait(), sandboxed), timed_out, logs)


def run(args: argparse.Namespace, end_leftovers: bool = False) -> int:
    """Every seed's run, each record written once the process that trained it has ended; `end_leftovers` (the
    command line's): before that, end every process the runs left (this process is then their subreaper, so
    double-forked daemons too). A run that timed out or whose process died ends only itself: the seeds after it
    run in a new driver process."""
    run_dirs = {seed: Path(run_dir) for seed, run_dir in zip(args.seeds, args.run_dirs)}
    for run_dir in run_dirs.values():
        run_dir.mkdir(parents=True, exist_ok=True)
    # What the driver may write: the run's folder, or for a group the cell's, which holds only its runs' folders.
    writable = Path(os.path.commonpath([str(d.resolve()) for d in run_dirs.values()]))
    missing_data = unavailable_data(args.data_root, args.datasets)
    read_only = [Path(args.strategy), *code_paths(*external_files(args.task)),
                 *([Path(args.data_root)] if args.datasets else [])]

    def sandboxed(seeds: list[int]) -> tuple[list[str], str, str | None]:
        return wrap(driver_command(args, seeds), args.sandbox, writable, read_only, uses_cuda(args.device),
                    Path.cwd(), hidden=[Path.cwd() / "results"])

    pending = list(args.seeds)
    sandbox, sandbox_note = "none", None
    try:
        _, sandbox, sandbox_note = sandboxed(pending)
    except SandboxError as error:
        missing_data = missing_data or str(error)
    if missing_data:  # a failed fetch (or a sandbox that cannot run) is every run's result; no driver starts
        now = datetime.now(timezone.utc)
        record_runs(args, {seed: Outcome(0, [f"ERROR: {missing_data}"], now, 0.0) for seed in pending}, run_dirs,
                    sandbox, sandbox_note, data_checked=False)
        return 0
    while pending:
        wrapped, _, _ = sandboxed(pending)
        try:
            outcomes = run_driver(wrapped, pending, args.data_root, args.time_limit, sandbox == "bwrap",
                                  args.sandbox)
        except Stopped as stopped:
            if end_leftovers:
                end_descendants()
            print(f"runner stopped by {stopped}: driver ended, no record written for seed(s) "
                  f"{', '.join(map(str, pending))}", file=sys.stderr)
            return 128 + stopped.signum
        if end_leftovers:
            end_descendants()  # nothing the runs started may touch their records after this
        record_runs(args, outcomes, run_dirs, sandbox, sandbox_note, driver_command(args, pending))
        pending = [seed for seed in pending if seed not in outcomes]
    return 0


def record_runs(args: argparse.Namespace, outcomes: dict[int, Outcome], run_dirs: dict[int, Path], sandbox: str,
                sandbox_note: str | None, command: list[str] | None = None, data_checked: bool = True) -> None:
    """Write each run's `run.log` and, last, its `record.json`."""
    data_hashes, data_notes = data_after_run(args.data_root, args.datasets) if data_checked else ({}, [])
    for seed, outcome in outcomes.items():
        parsed = parse_log(outcome.log_text)
        metrics = final_metrics(parsed)
        task_config = next((line.fields for line in parsed if line.kind == "TASK_CONFIG"), None)
        returncode = outcome.returncode
        if outcome.timed_out:
            error = f"timed out after {args.time_limit:g} s"
        else:
            error = (death_reason(returncode) or failure_reason(returncode, outcome.stderr_lines, bool(metrics))
                     or divergence(parsed) or column_clashes(metrics) or get(args.task).out_of_range(metrics))
        identity = {"task": args.task, "benchmark": args.benchmark, "strategy": Path(args.strategy).stem,
                    "seed": seed, "protocol": args.protocol, "scale": args.scale}
        record = run_record(
            identity, error, metrics, strategy_path=args.strategy, data_hashes=data_hashes,
            config={"workflow": json.loads(args.config), "overrides": args.overrides, "task_config": task_config},
            command=(command or driver_command(args, [seed]))[1:], exit_status=returncode,
            device=device_from_stderr(outcome.stderr_lines, args.device), started=outcome.started,
            wall_seconds=outcome.wall_seconds,
            notes=truncations(parsed) + data_notes + ([sandbox_note] if sandbox_note else []), sandbox=sandbox)
        run_dir = run_dirs[seed]
        for name in OUTPUTS:  # the runner's own files, whatever a run left at their names (a folder, a link)
            clear(run_dir / name)
        write_text_atomic(run_dir / "run.log", outcome.log_text)
        write_json_atomic(run_dir / "record.json", record)
        print(f"{record['status']}: {args.task}/{args.protocol}/{args.benchmark}/{record['strategy']}/seed{seed}"
              f" in {outcome.wall_seconds:.1f}s" + (f" ({error})" if error else ""), file=sys.stderr)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m optrepro.runner", description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--benchmark", required=True)
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--strategy", required=True)
    parser.add_argument("--seed", dest="seeds", type=int, action="append", required=True,
                        help="repeatable, each with its --run-dir: the runs trained in turn in one driver process")
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
    parser.add_argument("--run-dir", dest="run_dirs", action="append", required=True,
                        help="the folder of the run of the --seed in the same place")
    args = parser.parse_args(argv)
    if len(args.run_dirs) != len(args.seeds) or len(set(args.seeds)) != len(args.seeds):
        parser.error("give each --seed once, each with one --run-dir")
    return args


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
