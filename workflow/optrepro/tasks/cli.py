"""The one driver skeleton: `python -m optrepro.tasks.<task>` for every task.

Why one: the three drivers take the same arguments, check scale overrides
and resolve the device the same way, and must end every anticipated failure
the same way, with the single line `ERROR: <strategy file>: <what>` on stderr
and exit status 2, which the runner records as the run's error. A task
supplies only what differs (`Driver`): the functions a strategy file must
define, the names it runs among, and how to run one benchmark.

Order at start: overrides are parsed and the configuration resolved and
validated, the device resolved (a failure here ends every run); then, for
each `--seed` in turn (the runner's grouped job: one cell's seeds, the fixed
costs of start-up paid once), the strategy file is loaded afresh (in a
process of its own: optrepro.strategy_host) and the benchmark runs; a
failure there ends that run only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import torch

from ..data.manifest import DataError
from ..device import DEVICE_ENV, DEVICE_LINE, REQUESTS, device_info, resolve_device
from ..metrics import begin_mark, end_mark
from ..strategy import StrategyError, load_strategy
from ..strategy_host import LocalObject, StrategyHost
from . import get
from .scale import TaskConfigError

# Failures that are the run's result, not a bug of the driver: one line each, exit status 2.
DEFAULT_SEED = 42
ANTICIPATED = (StrategyError, TaskConfigError, DataError, RuntimeError, ValueError, ArithmeticError)


@dataclass(frozen=True)
class Driver:
    """What one task's driver gives the skeleton.

    `run(strategy, config, seed, device)` prints the benchmark's lines and returns what `--output-dir` saves
    (as `summary_file`, formatted with the label and seed). `add_arguments` adds task-only options and
    `configure(args, overrides)` resolves the configuration from them (default: the task's `resolve_config`).
    """

    task: str
    namespace: Callable[[], Mapping[str, object]]
    run: Callable[..., object]
    summary_file: str = "{label}_seed{seed}.json"
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    configure: Callable[[argparse.Namespace, dict], object] | None = None
    # The strategy's functions run in a process of their own (optrepro.strategy_host), returning plain values
    # and instances of `accepted_results`; the results of `kept_results` (DP-SGD's mechanism) stay there as
    # objects whose methods the driver calls.
    separate_process: bool = False
    accepted_results: tuple[type, ...] = ()
    kept_results: tuple[str, ...] = ()
    # Run in the strategy's process on each function's result (name, result) before it is sent: a lossless,
    # smaller form the driver accepts (its classes among `accepted_results`).
    compact_result: Callable[[str, object], object] | None = None

    def host(self, path: str | Path, device: torch.device) -> StrategyHost:
        """The strategy file loaded in a process of its own, as runs load it (a context manager)."""
        return StrategyHost(self.task, path, get(self.task).strategy_functions, device, self.accepted_results,
                            self.kept_results)

    def load_strategy(self, path: str | Path, device: torch.device = torch.device("cpu")):
        """The strategy file loaded in this process among the task's names (the tests' reference for the host's),
        the results of `kept_results` wrapped as the host's are (LocalObject)."""
        strategy = load_strategy(path, self.namespace(), get(self.task).strategy_functions)
        for name in self.kept_results:
            function = getattr(strategy, name)
            setattr(strategy, name, lambda *args, _function=function, **kwargs:
                    LocalObject(strategy.path, _function(*args, **kwargs), device))
        return strategy


def parser(driver: Driver) -> argparse.ArgumentParser:
    task = get(driver.task)
    result = argparse.ArgumentParser(prog=f"python -m optrepro.tasks {driver.task}", description=task.summary)
    result.add_argument("--benchmark", choices=list(task.benchmarks), default=next(iter(task.benchmarks)))
    result.add_argument("--strategy", required=True,
                        help=f"strategy file (defining {', '.join(task.strategy_functions)})")
    result.add_argument("--seed", dest="seeds", type=int, action="append", metavar="SEED",
                        help=f"repeatable: the runs to train in this process, in order (default {DEFAULT_SEED})")
    result.add_argument("--protocol", choices=list(task.protocols), default=next(iter(task.protocols)))
    result.add_argument("--device", choices=REQUESTS, default="auto")
    result.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="scale override (repeatable): " + ", ".join(task.override_fields))
    result.add_argument("--output-dir", type=Path, help="also write the original's JSON summary here")
    result.add_argument("--label", default="eval", help="JSON summary file name prefix")
    if driver.add_arguments:
        driver.add_arguments(result)
    return result


def parse_args(driver: Driver, argv: list[str] | None = None) -> argparse.Namespace:
    return parser(driver).parse_args(argv)


def main(driver: Driver, argv: list[str] | None = None) -> int:
    """Run one benchmark for each `--seed`, in order, each with its strategy loaded afresh (for a hosted strategy
    a new process, so that nothing a strategy keeps reaches its next run); every anticipated failure is one
    `ERROR:` line and status 2. A failure before the first run (configuration, device) ends them all; a run's own
    ends only that run. Under the runner (DEVICE_ENV) each run is framed (metrics.begin_mark, end_mark)."""
    args = parse_args(driver, argv)
    task = get(driver.task)
    under_runner = os.environ.get(DEVICE_ENV) == "1"
    try:
        overrides = task.parse_overrides(args.overrides)
        if driver.configure:
            config = driver.configure(args, overrides)
        else:
            config = task.resolve_config(args.benchmark, args.protocol, overrides)
        device = resolve_device(args.device)
        if under_runner:
            print(DEVICE_LINE + json.dumps(device_info(args.device, device)), file=sys.stderr, flush=True)
    except ANTICIPATED as exc:
        return failed(args.strategy, exc)
    worst = 0
    for seed in args.seeds or [DEFAULT_SEED]:
        if under_runner:
            print(begin_mark(seed), flush=True)
            print(begin_mark(seed), file=sys.stderr, flush=True)
        status = run_seed(driver, args, config, seed, device)
        sys.stdout.flush()  # the run's lines are in its log before it ends, should the process die in the next
        if under_runner:
            print(end_mark(seed, status), file=sys.stderr, flush=True)
        worst = max(worst, status)
    return worst


def run_seed(driver: Driver, args: argparse.Namespace, config: object, seed: int, device: torch.device) -> int:
    """One run: 0, or 2 after its `ERROR:` line."""
    try:
        with contextlib.ExitStack() as stack:
            if driver.separate_process:
                strategy = stack.enter_context(driver.host(args.strategy, device))
            else:
                strategy = driver.load_strategy(args.strategy)
            summary = driver.run(strategy, config, seed, device)
    except ANTICIPATED as exc:
        return failed(args.strategy, exc)
    if args.output_dir:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        path = args.output_dir / driver.summary_file.format(label=args.label, seed=seed)
        path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return 0


def failed(strategy: str, exc: Exception) -> int:
    message = exc.message if isinstance(exc, StrategyError) else str(exc)
    print(f"ERROR: {strategy}: {message}", file=sys.stderr, flush=True)
    return 2
