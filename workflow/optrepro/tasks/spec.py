"""What a task is, in one place: the `TaskSpec` every task package exports as `TASK` (torch-free).

The workflow (plan, runner), the report and the tests read a task only through its spec: they iterate over
the registry (`optrepro.tasks`) and never name a task. A spec says what the task's benchmarks, protocols and
metrics are, how its scale overrides parse and its configuration resolves, what a job costs, what a strategy
file must define and among which names it runs, what the report must say about its numbers, and which
figures of its own the report draws. Its driver (`driver`, a module defining `DRIVER`, a tasks.cli.Driver)
imports torch and is loaded only where a benchmark runs. docs/adding-a-task.md walks through a new one.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

from ..metrics import DEFAULT_DECIMALS
from .scale import TaskConfigError

DIRECTIONS = ("higher", "lower")


@dataclass(frozen=True)
class FigureSpec:
    """A figure the report draws for a task beyond the shared ones (curves, point estimates, profiles):
    `draw` names a function `module:function` called as `draw(runs, curves, colours)` with the task's ok runs
    (runs.csv rows), their curve points (curves.csv rows) of one scale and protocol, and the strategies'
    colours; it returns a matplotlib figure, or None where there is nothing to draw."""

    kind: str  # the file name's first part; letters and underscores
    title: str
    caption: str
    draw: str

    def drawer(self) -> Callable:
        module, _, name = self.draw.partition(":")
        return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class TaskSpec:
    """One task's interface. Fields without a default every task must give; the others default to nothing."""

    name: str
    summary: str  # one line: what the task is
    benchmarks: Mapping[str, Mapping[str, object]]  # benchmark -> the driver's settings for it
    protocols: Mapping[str, Mapping[str, object]]  # protocol -> the driver's settings (mlsbench first)
    # The final metrics a report summarises, in order, each with its direction (higher or lower is better):
    # the one place metric directions live.
    metrics: Mapping[str, str]
    # Each declared metric's possible values, (lowest, highest): a run whose final value lies outside, or is not
    # a finite number, fails with the reason (the runner's check), so that the report never ranks it.
    ranges: Mapping[str, tuple[float, float]]
    override_fields: tuple[str, ...]  # what `--set FIELD=VALUE` (the configuration's `overrides`) may set
    parse_overrides: Callable[[list[str]], dict[str, object]]
    # (benchmark, protocol, parsed overrides) -> the driver's validated configuration (TaskConfigError if not)
    resolve_config: Callable[..., object]
    # (benchmark, protocol, override items) -> {"mem_mb": ..., "runtime": minutes} of one job
    job_resources: Callable[[str, str, list[str]], dict[str, int]]
    driver: str  # module defining DRIVER (imports torch)
    strategy_functions: tuple[str, ...]  # what a strategy file must define
    original_names: tuple[str, ...]  # the names the original module offered a strategy file
    added_names: tuple[str, ...] = ()  # names offered beside them (this project's own)
    datasets: Mapping[str, str] = field(default_factory=dict)  # benchmark -> dataset (optrepro.data) it reads
    # benchmark -> the metric that ranks and that performance profiles compare, or {protocol: metric} where the
    # protocols rank differently; default: the first declared metric the benchmark's runs print
    headline: Mapping[str, str | Mapping[str, str]] = field(default_factory=dict)
    metric_notes: Mapping[str, str] = field(default_factory=dict)  # metric -> what a reader must know of it
    # (benchmark, protocol) pairs the driver reproduces exactly per seed: compared seed by seed at the printed
    # precision in the reproduction summary
    exact_per_seed: frozenset[tuple[str, str]] = frozenset()
    # final metrics that measure the machine, not the method (wall-clock seconds): never compared with a reference
    machine_dependent: frozenset[str] = frozenset()
    # `FIELD=VALUE` overrides of the budget `make check` runs a strategy's every benchmark at (optrepro.check): the
    # original's smoke mode where it has one, else a small budget that still calls every strategy function
    check_overrides: tuple[str, ...] = ()
    # What one seed fixes for every strategy (data, starts, initialisation): runs of one seed pair across
    # strategies, so the report tests a strategy against the reference paired over their common seeds; empty:
    # nothing is shared, so Welch's unpaired test
    seed_fixes: str = ""
    leaderboard_id: str = ""  # the task's `task_id` on the original's public leaderboard (MLS-Bench website data)
    # metric -> the decimals the driver's final line prints it with, where not metrics.DEFAULT_DECIMALS (0: an
    # integer): the precision at which the original printed it, a reference is written and an exact cell compared
    printed_decimals: Mapping[str, int] = field(default_factory=dict)
    # metric -> (the final metric that is its population std over the runs one seed averages, the one that counts
    # those runs), for a metric a seed prints as a mean of runs: the original's within-seed spread
    run_spread: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # run (a runs.csv row as a dict) -> why it may not be ranked ('' when it may): it keeps its numbers but gets
    # no best mark, rank, profile or comparison with the reference strategy
    ranking_exclusion: Callable[[Mapping[str, object]], str] | None = None
    caveat: Callable[[Mapping[str, object]], str] | None = None  # run -> what must be shown beside it
    figures: tuple[FigureSpec, ...] = ()

    def __post_init__(self) -> None:
        if problems := self.problems():
            raise ValueError(f"task {self.name!r}: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """What makes this spec inconsistent, one line each (checked when it is made)."""
        found = [f"metric {metric!r}: direction {direction!r} is not one of {', '.join(DIRECTIONS)}"
                 for metric, direction in self.metrics.items() if direction not in DIRECTIONS]
        found += [f"metric {metric!r}: no range" for metric in self.metrics if metric not in self.ranges]
        found += [f"ranges: {metric!r} is not a declared metric" for metric in self.ranges
                  if metric not in self.metrics]
        found += [f"range of {metric!r}: {low} > {high}" for metric, (low, high) in self.ranges.items() if low > high]
        if not (self.benchmarks and self.protocols and self.metrics and self.strategy_functions):
            found.append("benchmarks, protocols, metrics and strategy_functions must not be empty")
        if next(iter(self.protocols), "mlsbench") != "mlsbench":
            found.append("the first protocol must be mlsbench (the benchmark as the original ran it)")
        for benchmark, chosen in self.headline.items():
            for metric in (chosen.values() if isinstance(chosen, Mapping) else [chosen]):
                if metric not in self.metrics:
                    found.append(f"headline of {benchmark!r}: {metric!r} is not a declared metric")
        for table, keys in (("datasets", self.datasets), ("headline", self.headline)):
            found += [f"{table}: unknown benchmark {name!r}" for name in keys if name not in self.benchmarks]
        found += [f"exact_per_seed: unknown benchmark or protocol in {pair!r}" for pair in self.exact_per_seed
                  if pair[0] not in self.benchmarks or pair[1] not in self.protocols]
        try:
            self.parse_overrides(list(self.check_overrides))
        except TaskConfigError as error:
            found.append(f"check_overrides: {error}")
        found += [f"{table}: {metric!r} is not a declared metric" for table, keys in
                  (("metric_notes", self.metric_notes), ("run_spread", self.run_spread)) for metric in keys
                  if metric not in self.metrics]
        return found

    def decimals(self, metric: str) -> int:
        """How many decimals the driver prints a final metric with."""
        return self.printed_decimals.get(metric, DEFAULT_DECIMALS)

    def full_budget(self, benchmark: str, protocol: str, overrides: list[str]) -> bool:
        """Whether a run with these scale overrides (`FIELD=VALUE` items) runs the benchmark's own budget: its
        resolved configuration is the one without overrides, so an override that changes nothing for this
        benchmark (another mode's field, a value equal to the default) does not make it smaller."""
        try:
            return (self.resolve_config(benchmark, protocol, self.parse_overrides(overrides))
                    == self.resolve_config(benchmark, protocol, {}))
        except TaskConfigError:
            return False

    def out_of_range(self, metrics: Mapping[str, object]) -> str | None:
        """Why a run's final metrics are impossible (the first declared metric that is not a finite number within
        its range), None when all are possible."""
        for metric, value in metrics.items():
            if metric not in self.ranges:
                continue
            low, high = self.ranges[metric]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                return f"{metric}={value} is not a finite number"
            if not low <= value <= high:
                return f"{metric}={value:g} is outside its range [{low:g}, {high:g}]"
        return None

    def headline_metric(self, benchmark: str, protocol: str) -> str | None:
        """The declared headline of one benchmark under one protocol, if the task names one."""
        chosen = self.headline.get(benchmark)
        return chosen.get(protocol) if isinstance(chosen, Mapping) else chosen

    def load_driver(self):
        """The task's tasks.cli.Driver (imports the driver module, and so torch)."""
        return importlib.import_module(self.driver).DRIVER
