"""The benchmark tasks. Each task package declares, without importing torch:

* `BENCHMARKS`: benchmark name -> the driver's settings for it;
* `PROTOCOLS`: protocol name -> the driver's settings for it (`mlsbench` first);
* `METRICS`: the final metrics a report shows, in order, each with its direction
  ("higher" or "lower" is better). This is the one place metric directions live;
* `HEADLINE` (optional): benchmark -> the metric that ranks and performance profiles compare across
  benchmarks, or a {protocol: metric} dict where protocols rank differently (default: the first declared
  metric the benchmark's runs print);
* `METRIC_NOTES` (optional): metric -> what a reader must know about it (shown where it ranks);
* `EXACT_PER_SEED` (optional): the (benchmark, protocol) pairs whose numbers the driver reproduces exactly for
  a given seed, so the reproduction summary compares seed by seed at the printed precision;
* `ranking_exclusion(run)`, `caveat(run)` (optional): for one run's row of runs.csv, why it may not be
  ranked (it keeps its numbers but gets no best mark, rank, profile or comparison with the reference
  strategy), and what must be shown beside it; '' when nothing;
* `DATASETS`: benchmark name -> the dataset (of `optrepro.data`) it reads, if any;
* `OVERRIDE_FIELDS`, `parse_overrides(items)`: the scale overrides (`--set FIELD=VALUE`) it accepts;
* `resolve_config(benchmark, protocol, overrides)`: the driver's validated configuration;
* `job_resources(benchmark, protocol, overrides)`: memory and runtime of one job.

Every task package has the same layout, each file with the same meaning:

    __init__.py   this interface (torch-free: the Snakefile imports it)
    config.py     the original's configuration dataclasses, benchmarks, protocols, overrides, job sizing (torch-free)
    core.py       the original module's names that strategy files run among (`NAMES`), and its reference code
    <engine>.py   the fast path, checked against the reference: parity `batched.py`; bilevel `vectorised.py`
                  (the toy) and `methods.py` (hyper-cleaning); dpsgd `vectorised.py` (per-example gradients),
                  with `accounting.py` and `audit.py`
    driver.py     run one benchmark and print its lines; `DRIVER` for the shared skeleton `cli.py`
    __main__.py   `python -m optrepro.tasks.<task>`
"""

import importlib
from types import ModuleType

TASKS = ("parity", "bilevel", "dpsgd")


def task_info(task: str) -> ModuleType:
    if task not in TASKS:
        raise KeyError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    return importlib.import_module(f"{__name__}.{task}")


def declared(task: str, name: str, default: object = None) -> object:
    """A task's declaration `name` (listed above), or `default` where the task lacks it or this checkout does not
    know the task (a report may be rebuilt from results of another checkout)."""
    return getattr(task_info(task), name, default) if task in TASKS else default
