"""Check a strategy file before a run: `make check STRATEGY=path/to/file.py`.

`python -m optrepro.check path/to/file.py [--task TASK] [--device auto] [--data-root resources/data]`

The task is the folder the file lies in (`strategies/<task>/`) when that names a registered task, else the one
task whose strategy functions the file defines (read from its syntax tree: the file is not run here). Each of
the task's benchmarks then runs once under `mlsbench`, seed 42, at the task's check budget (`TaskSpec.
check_overrides`: the original's smoke mode where it has one) through the runner, so in the same sandbox and
with the same checks as a workflow run, the benchmarks side by side. One line per benchmark: `ok` with the
declared metrics, `FAILED` with the run's one-line error, or `skipped` where a dataset it reads is not fetched.
Exit status 0 only if every benchmark that ran passed and one did; 2 for a file that cannot be checked at all.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import tasks
from .device import REQUESTS
from .metrics import format_value
from .runner import unavailable_data
from .sandbox import MODES

SEED = 42
PROTOCOL = "mlsbench"
TIME_LIMIT_S = 300  # per benchmark: a strategy that takes longer at the check budget fails its check


class CheckError(ValueError):
    """A file that cannot be checked (not found, not Python, no task it belongs to)."""


def defined_names(path: Path) -> set[str]:
    """The names a file defines at its top level (functions, classes, assignments), without running it."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError) as error:
        raise CheckError(f"{path}: cannot be read ({error})") from None
    except SyntaxError as error:
        raise CheckError(f"{path}:{error.lineno}: not valid Python: {error.msg}") from None
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {target.id for target in targets if isinstance(target, ast.Name)}
    return names


def detect_task(path: Path) -> str:
    """The file's task: its folder's name if a task is registered under it, else the only task whose strategy
    functions it all defines."""
    names = defined_names(path)
    if path.parent.name in tasks.registered():
        return path.parent.name
    matching = [name for name in tasks.registered() if set(tasks.get(name).strategy_functions) <= names]
    if len(matching) == 1:
        return matching[0]
    wanted = "; ".join(f"{name}: {', '.join(tasks.get(name).strategy_functions)}" for name in tasks.registered())
    raise CheckError(f"{path}: cannot tell its task (it lies in no strategies/<task>/ folder and defines the "
                     f"functions of {len(matching)} tasks; each task's: {wanted}); pass --task")


def runner_command(args: argparse.Namespace, task: str, benchmark: str, run_dir: Path) -> list[str]:
    spec = tasks.get(task)
    dataset = spec.datasets.get(benchmark)
    return [sys.executable, "-m", "optrepro.runner", "--task", task, "--benchmark", benchmark, "--protocol", PROTOCOL,
            "--strategy", str(args.strategy), "--seed", str(SEED), "--device", args.device, "--scale", "check",
            *(f"--set={item}" for item in spec.check_overrides), "--data-root", args.data_root,
            *([f"--dataset={dataset}"] if dataset else []), "--time-limit", str(TIME_LIMIT_S),
            "--sandbox", args.sandbox, "--run-dir", str(run_dir)]


def check_benchmark(args: argparse.Namespace, task: str, benchmark: str, scratch: Path,
                    threads: int) -> tuple[bool | None, str]:
    """(passed, its line); passed is None where the benchmark could not run here (a dataset not fetched).

    `threads` is the run's share of the cores, as the workflow's train rule gives each job: two runs whose
    OpenMP threads outnumber the cores spin at each other's barriers (a 14 s parity check took over 300 s)."""
    spec = tasks.get(task)
    dataset = spec.datasets.get(benchmark)
    if dataset and (why := unavailable_data(args.data_root, [dataset])):
        return None, f"skipped {benchmark}: {why} (optrepro-data fetch --dataset {dataset})"
    run_dir = scratch / benchmark
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    done = subprocess.run(runner_command(args, task, benchmark, run_dir), capture_output=True, text=True, env=env)
    try:
        record = json.loads((run_dir / "record.json").read_text())
    except (OSError, ValueError):
        return False, f"FAILED {benchmark}: no record (runner exit {done.returncode}: {done.stderr.strip()[-300:]})"
    if record["status"] != "ok":
        return False, f"FAILED {benchmark}: {record['error']}"
    numbers = " ".join(f"{metric}={format_value(value, spec.decimals(metric))}"
                       for metric, value in record["metrics"].items() if metric in spec.metrics)
    return True, f"ok {benchmark} in {record['wall_seconds']:.1f} s: {numbers}"


def check(args: argparse.Namespace) -> int:
    task = args.task or detect_task(args.strategy)
    if task not in tasks.registered():
        raise CheckError(f"unknown task {task!r} (registered: {', '.join(tasks.registered())})")
    benchmarks = list(tasks.get(task).benchmarks)
    print(f"checking {args.strategy} as a {task} strategy: {len(benchmarks)} benchmark(s) under {PROTOCOL}, "
          f"seed {SEED}, at the check budget", flush=True)
    cores = os.cpu_count() or 1
    workers = max(1, min(len(benchmarks), cores))
    with tempfile.TemporaryDirectory(prefix="optrepro-check-") as scratch, ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda b: check_benchmark(args, task, b, Path(scratch), cores // workers), benchmarks))
    for _, line in results:
        print(line)
    outcomes = [passed for passed, _ in results if passed is not None]
    return 0 if outcomes and all(outcomes) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optrepro.check", description=__doc__.splitlines()[0])
    parser.add_argument("strategy", type=Path, help="the strategy file")
    parser.add_argument("--task", help="its task (default: from its folder, else from the functions it defines)")
    parser.add_argument("--device", default="auto", choices=REQUESTS)
    parser.add_argument("--data-root", default="resources/data", help="folder of the fetched datasets")
    parser.add_argument("--sandbox", default="auto", choices=MODES, help="as the workflow's runs (optrepro.runner)")
    args = parser.parse_args(argv)
    try:
        if not args.strategy.is_file():
            raise CheckError(f"{args.strategy}: no such file")
        return check(args)
    except CheckError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
