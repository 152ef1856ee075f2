"""What a configuration asks to run: the Snakefile's logic, kept here where it is tested.

`check_config` turns a schema-valid config into one precise message per
problem (unknown benchmark, missing strategy file, ...); `planned_runs` lists
every task x protocol x benchmark x strategy x seed job; `costs` adds up what
they will ask of a machine or cluster.

`python -m optrepro.plan --configfile config/config.yaml` (`make plan`) prints
that cost before anything runs.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import re
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

from . import tasks
from .configuration import WorkflowConfigError, load
from .device import uses_cuda
from .provenance import driver_files

# Where one run's files live, relative to the working folder: the train rule's output pattern and every planned
# run's folder.
RUN_DIR = "results/runs/{task}/{protocol}/{benchmark}/{strategy}/seed{seed}"
# A training job trains one cell (task x protocol x benchmark x strategy), all its seeds in one driver process,
# or under `train_job: run` one run: the wildcards naming its log and benchmark file.
CELL = "{task}/{protocol}/{benchmark}/{strategy}"
# The group of training jobs that share one GPU on a cluster: profiles/slurm sets its size (--group-components).
GPU_SHARE_GROUP = "gpu_share"
# The runner's own limit sits below the scheduler's (the same job sizing), so that a run past it is recorded as
# timed out before a cluster kills the job, which would leave no record and rerun it forever.
TIME_LIMIT_SHARE = 0.9

@dataclass(frozen=True)
class PlannedRun:
    task: str
    protocol: str
    benchmark: str
    strategy: str
    seed: int

    @property
    def run_dir(self) -> str:
        return RUN_DIR.format(**asdict(self))


def put_this_interpreter_first_on_path() -> None:
    """Jobs run `python -m optrepro...`: make that the interpreter running Snakemake, which has optrepro installed,
    for this process and the jobs it starts (a job's conda environment, under --sdm conda, still comes first)."""
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", os.defpath)])


def strategy_root(config: dict) -> Path:
    """The strategies folder: absolute, or relative to the working folder."""
    return Path(config["strategy_dir"])


# reports/config.json carries, under this key beside the configuration, what the plan left out and why.
PLAN_WARNINGS_KEY = "plan_warnings"
# A strategy's name is its file name without `.py`: data that goes into paths, wildcards and shell commands, so
# it starts with a letter or digit (no `..`, no hidden or private file) and holds only letters, digits, _ . -.
# The schema's pattern for listed names and the train rule's wildcard constraint are the same.
STRATEGY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def strategy_files(root: Path, task: str) -> list[Path]:
    """The task's strategy files (not `_private.py` helpers), valid names or not, in name order."""
    return sorted(p for p in (root / task).glob("*.py") if not p.name.startswith("_"))


def available_strategies(root: Path, task: str) -> list[str]:
    """The names of the task's strategy files whose name is a valid strategy name."""
    return [p.stem for p in strategy_files(root, task) if STRATEGY_NAME.fullmatch(p.stem)]


def skipped_strategy_files(config: dict) -> list[str]:
    """One warning per strategy file that `strategies: all` leaves out because its name is not a valid strategy
    name (letters, digits, `_`, `.`, `-`)."""
    root = strategy_root(config)
    return [f"{path}: skipped, {path.stem!r} is not a valid strategy name (a letter or digit, then letters, "
            "digits, _ . - only)"
            for task, settings in config["tasks"].items() if settings["strategies"] == "all"
            for path in strategy_files(root, task) if not STRATEGY_NAME.fullmatch(path.stem)]


def task_strategies(config: dict, root: Path, task: str) -> list[str]:
    """The task's `strategies` list, or every file in its folder for `all`."""
    chosen = config["tasks"][task]["strategies"]
    return available_strategies(root, task) if chosen == "all" else list(chosen)


def check_config(config: dict) -> None:
    """Raise WorkflowConfigError listing every name in a validated configuration that does not exist."""
    problems = []
    root = strategy_root(config)
    for task, settings in config["tasks"].items():
        if task not in tasks.names():
            problems.append(f"tasks.{task}: unknown task (known: {', '.join(tasks.names())})")
            continue
        spec = tasks.get(task)
        for key, known in (("benchmarks", spec.benchmarks), ("protocols", spec.protocols)):
            for name in settings[key]:
                if name not in known:
                    problems.append(f"tasks.{task}.{key}: unknown {key[:-1]} {name!r} (known: {', '.join(known)})")
        names = task_strategies(config, root, task)
        if not names:
            problems.append(f"tasks.{task}.strategies: no strategy files in {root / task}")
        for name in names:
            if not (root / task / f"{name}.py").is_file():
                problems.append(f"tasks.{task}.strategies: no strategy file {root / task / f'{name}.py'}")
        problems.extend(override_problems(config, task))
        reference = settings.get("reference")
        if reference and reference not in names:
            problems.append(f"tasks.{task}.reference: {reference!r} is not among the task's strategies")
    if problems:
        raise WorkflowConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def override_problems(config: dict, task: str) -> list[str]:
    """Every benchmark x protocol's configuration under the task's overrides, checked as its driver will at
    start; one line per distinct problem."""
    spec, settings = tasks.get(task), config["tasks"][task]
    try:
        parsed = spec.parse_overrides(overrides(config, task))
    except ValueError as exc:
        return [f"tasks.{task}.overrides: {exc}"]
    found = []
    for benchmark in settings["benchmarks"]:
        for protocol in settings["protocols"]:
            if benchmark in spec.benchmarks and protocol in spec.protocols:
                try:
                    spec.resolve_config(benchmark, protocol, parsed)
                except ValueError as exc:
                    found.append(f"tasks.{task}.overrides: {exc}")
    return list(dict.fromkeys(found))


def planned_runs(config: dict) -> list[PlannedRun]:
    root = strategy_root(config)
    return [PlannedRun(task, protocol, benchmark, strategy, seed)
            for task, settings in config["tasks"].items()
            for protocol in settings["protocols"]
            for benchmark in settings["benchmarks"]
            for strategy in task_strategies(config, root, task)
            for seed in task_seeds(config, task)]


def task_seeds(config: dict, task: str) -> list[int]:
    """The task's own seeds, else the top-level ones."""
    return config["tasks"][task].get("seeds", config["seeds"])


# Task settings that choose which runs exist or how the report reads them, not what a run computes: left out of
# a run's configuration (run_settings), so that adding a strategy, seed or benchmark reruns no existing run.
PLAN_ONLY_SETTINGS = ("benchmarks", "protocols", "strategies", "seeds", "reference")


def run_settings(config: dict, task: str) -> dict:
    """The part of the configuration one run depends on (the train rules' `--config`): a change reruns it."""
    settings = {k: v for k, v in config["tasks"][task].items() if k not in PLAN_ONLY_SETTINGS}
    return {"scale": config["scale"], "device": config["device"], "task": settings}


def job_wildcards(config: dict) -> str:
    """The wildcards of one training job's log and benchmark file."""
    return CELL + ("/seed{seed}" if config["train_job"] == "run" else "")


def job_outputs(config: dict, task: str, name: str) -> list[str]:
    """A train rule's output patterns for `name` (run.log, record.json): one per seed of the task's cell, or
    under `train_job: run` the one of a `{seed}` wildcard; the other wildcards left for Snakemake."""
    if config["train_job"] == "run":
        return [f"{RUN_DIR}/{name}"]
    return [RUN_DIR.format(task="{task}", protocol="{protocol}", benchmark="{benchmark}", strategy="{strategy}",
                           seed=seed) + f"/{name}" for seed in task_seeds(config, task)]


def job_seeds(config: dict, wildcards: Mapping[str, str]) -> list[str]:
    """The runner's `--seed S --run-dir D` pairs of one training job (its wildcards): its cell's, or its run's."""
    seeds = [int(wildcards["seed"])] if "seed" in wildcards else task_seeds(config, wildcards["task"])
    cell = (wildcards["task"], wildcards["protocol"], wildcards["benchmark"], wildcards["strategy"])
    return [option for seed in seeds for option in ("--seed", str(seed), "--run-dir", PlannedRun(*cell, seed).run_dir)]


def strategy_file(config: dict, task: str, strategy: str) -> str:
    """The strategy file as a path relative to the working folder when it lies inside it, else absolute."""
    path = (strategy_root(config) / task / f"{strategy}.py").resolve()
    cwd = Path.cwd().resolve()
    return os.path.relpath(path, cwd) if path.is_relative_to(cwd) else str(path)


@functools.cache
def driver_sources(task: str) -> tuple[str, ...]:
    """The files a task's results depend on, so that editing them reruns its jobs; found once per task and
    workflow parse (walking the imports takes ~60 ms, and the full plan asks 810 times)."""
    return tuple(str(p) for p in driver_files(task))


def overrides(config: dict, task: str) -> list[str]:
    """The task's scale overrides as the driver's `--set FIELD=VALUE` arguments."""
    return [f"{key}={value}" for key, value in config["tasks"][task]["overrides"].items()]


def run_datasets(task: str, benchmark: str) -> list[str]:
    """The datasets one benchmark of a task reads."""
    dataset = tasks.get(task).datasets.get(benchmark)
    return [dataset] if dataset else []


def needed_datasets(config: dict) -> list[str]:
    """Every dataset some planned benchmark reads."""
    return sorted({d for task, settings in config["tasks"].items() for b in settings["benchmarks"]
                   for d in run_datasets(task, b)})


def data_root(config: dict) -> str:
    """The folder of the fetched datasets (the drivers' DATA_ROOT), relative to the working folder or absolute."""
    return config["data"]["root"]


def fetch_arguments(config: dict, dataset: str) -> list[str]:
    """`python -m optrepro.data fetch` options for a dataset: its sources in order and its sha256 manifests."""
    settings = config["data"]["datasets"].get(dataset, {})  # a dataset's keys are optional: none, its built-ins
    args = [f"--source={source}" for source in settings.get("sources", [])]
    args += [f"--archive={name}={digest}" for name, digest in settings.get("archives", {}).items()]
    args += [f"--sha256={path}={digest}" for path, digest in settings.get("sha256", {}).items()]
    args += [f"--md5={name}={digest}" for name, digest in settings.get("md5", {}).items()]
    return args


def retry_failed_fetches(config: dict, runs: list[PlannedRun]) -> list[str]:
    """Make this invocation fetch again every dataset whose last fetch failed, and rerun exactly the planned runs
    that were recorded as failed for want of it: their status file, records and logs are removed (the train
    rule reads the status as `ancient`, so a new status reruns nothing else). Returns the datasets."""
    import json

    from .data.manifest import read_status, status_path

    failed = []
    for dataset in needed_datasets(config):
        status = status_path(data_root(config), dataset)
        if status.exists() and read_status(status).get("status") != "ok":
            failed.append(dataset)
    unavailable = tuple(f"dataset {dataset} unavailable:" for dataset in failed)
    for run in runs:
        record = Path(run.run_dir, "record.json")
        try:
            error = json.loads(record.read_text()).get("error") or ""
        except (OSError, ValueError):
            continue
        if error.startswith(unavailable):
            Path(run.run_dir, "run.log").unlink(missing_ok=True)
            record.unlink()
    for dataset in failed:
        status_path(data_root(config), dataset).unlink()
    return failed


def gpu_gres(config: dict) -> str:
    """SLURM's `gres` for a training job: one GPU ("gpu:1") where it will use CUDA (`device: cuda`, or `auto` on
    a host with a GPU), else none (""). A string, not a count: Snakemake gives a group job a string resource
    its jobs share, where it would sum a count, so a group of jobs sharing one GPU asks for one."""
    return "gpu:1" if uses_cuda(config["device"]) else ""


def gpu_percent(config: dict, task: str, benchmark: str, protocol: str) -> int:
    """The share of one GPU (percent) a training job holds: the base share 100 // `gpu_jobs`, more where its
    memory estimate needs more of `gpu_memory_mb`; 0 where it does not use CUDA. `--resources gpu_percent=100`
    per GPU then lets `gpu_jobs` small jobs run side by side and keeps the sum of their estimates within the
    GPU's memory."""
    if not gpu_gres(config):
        return 0
    memory = job_resources(config, task, benchmark, protocol)["mem_mb"]
    return min(100, max(base_gpu_share(config), math.ceil(100 * memory / config["gpu_memory_mb"])))


def base_gpu_share(config: dict) -> int:
    """The share of a job whose memory estimate needs no more: rounded down, so that `gpu_jobs` of them fit."""
    return max(1, 100 // config["gpu_jobs"])


def gpu_share_group(config: dict, task: str, benchmark: str, protocol: str) -> str | None:
    """The Snakemake group of training jobs that share a GPU on a cluster (profiles/slurm bundles them into SLURM
    jobs with one GPU each, laid out so that their `gpu_percent` adds up to at most 100 at any time): jobs holding
    the base share, below 100; None (a job of its own) for the rest. One share only, because inside a group job
    Snakemake runs as many jobs at once as the cores laid out for them allow, whatever their shares."""
    share = gpu_percent(config, task, benchmark, protocol)
    return GPU_SHARE_GROUP if share == base_gpu_share(config) < 100 else None


def run_resources(config: dict, task: str, benchmark: str, protocol: str) -> dict[str, int]:
    """Memory (mem_mb) and runtime (minutes) one run needs, sized by its task; a configured `time_limit_s` above
    the sizing's raises the runtime so that the runner's limit stays below it."""
    sized = tasks.get(task).job_resources(benchmark, protocol, overrides(config, task))
    configured = config["tasks"][task].get("time_limit_s")  # optional: without it, the limit follows the sizing
    if configured:
        sized["runtime"] = max(sized["runtime"], math.ceil(configured / 60 / TIME_LIMIT_SHARE))
    return sized


def job_resources(config: dict, task: str, benchmark: str, protocol: str) -> dict[str, int]:
    """What one training job requests: a run's memory and, for a cell (its seeds one after another in one
    process), the runs' runtimes added up."""
    sized = run_resources(config, task, benchmark, protocol)
    runs = 1 if config["train_job"] == "run" else len(task_seeds(config, task))
    return {**sized, "runtime": sized["runtime"] * runs}


def time_limit(config: dict, task: str, benchmark: str, protocol: str) -> int:
    """Seconds one run may take before the runner ends it (the runner's `--time-limit`): the task's configured
    `time_limit_s`, else TIME_LIMIT_SHARE of the runtime its job requests."""
    configured = config["tasks"][task].get("time_limit_s")
    if configured:
        return configured
    return math.floor(run_resources(config, task, benchmark, protocol)["runtime"] * 60 * TIME_LIMIT_SHARE)


def costs(config: dict) -> list[dict[str, object]]:
    """Per task x benchmark x protocol, in the configuration's order: the number of runs, each run's memory and
    time limit (its job, a cell of them, requests that memory and their times added up), and the device hours
    those limits add up to."""
    counted = Counter((run.task, run.benchmark, run.protocol) for run in planned_runs(config))
    rows = []
    for (task, benchmark, protocol), runs in counted.items():
        sized = run_resources(config, task, benchmark, protocol)
        rows.append({"task": task, "benchmark": benchmark, "protocol": protocol, "runs": runs,
                     "mem_mb": sized["mem_mb"], "runtime_min": sized["runtime"],
                     "hours": runs * sized["runtime"] / 60})
    return rows


def cost_report(config: dict) -> str:
    """`costs` as the text `make plan` prints."""
    rows = costs(config)
    header = f"{'task':<8} {'benchmark':<18} {'protocol':<10} {'runs':>5} {'GB/run':>7} {'min/run':>8} {'hours':>8}"
    lines = [header, "-" * len(header)]
    lines += [f"{r['task']:<8} {r['benchmark']:<18} {r['protocol']:<10} {r['runs']:>5} {r['mem_mb'] / 1000:>7.1f} "
              f"{r['runtime_min']:>8} {r['hours']:>8.1f}" for r in rows]
    lines.append("-" * len(header))
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        lines.append(f"{task:<38} {sum(r['runs'] for r in mine):>5} {'':>16} {sum(r['hours'] for r in mine):>8.1f}")
    lines.append(f"{'total':<38} {sum(r['runs'] for r in rows):>5} {'':>16} {sum(r['hours'] for r in rows):>8.1f}")
    lines.append(f"scale {config['scale']}, device {config['device']}, {config['train_threads']} CPU thread(s) "
                 "per job; a job trains one cell's seeds in turn. Each run's time limit is its task's sizing (the "
                 "task's job_resources: its runs at CPU throughput, with headroom), so the hours are an upper bound "
                 "of what the runs take on that hardware; a GPU is faster.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optrepro.plan", description="what a configuration will run "
                                     "and cost: runs, memory and time per job, device hours")
    parser.add_argument("--configfile", type=Path, default=Path("config/config.yaml"),
                        help="the configuration (default: config/config.yaml); paths in it are relative to the "
                             "working folder")
    args = parser.parse_args(argv)
    try:
        config = load(args.configfile)
        check_config(config)
    except (WorkflowConfigError, OSError, ValueError) as error:
        print(f"ERROR: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(cost_report(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
