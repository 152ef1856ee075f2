"""The benchmark tasks. Each task package declares, without importing torch:

* `BENCHMARKS`: benchmark name -> the driver's settings for it;
* `PROTOCOLS`: protocol name -> the driver's settings for it (`mlsbench` first);
* `METRICS`: the final metrics a report shows, in order, each with its direction
  ("higher" or "lower" is better). This is the one place metric directions live;
* `HEADLINE` (optional): benchmark -> the metric that ranks and performance profiles compare across
  benchmarks (default: the first declared metric the benchmark's runs print);
* `DATASETS`: benchmark name -> the dataset (of `optrepro.data`) it reads, if any;
* `job_resources(benchmark, protocol, overrides)`: memory and runtime of one job.
"""

import importlib
from types import ModuleType

TASKS = ("parity", "bilevel", "dpsgd")


def task_info(task: str) -> ModuleType:
    if task not in TASKS:
        raise KeyError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    return importlib.import_module(f"{__name__}.{task}")
