"""The benchmark tasks, and the one registry of them.

A task is a package (or a module) that exports `TASK`, a `TaskSpec` (spec.py): everything the workflow, the
report and the tests need to know of it, without torch. The built-in tasks are listed here, one line each; a
task kept outside this package is registered by the environment variable OPTREPRO_TASKS, a comma-separated
list of NAME=MODULE or NAME=FILE.py, which every process of a workflow inherits (docs/adding-a-task.md).

Every built-in task package has the same layout, each file with the same meaning:

    __init__.py   TASK, its spec (torch-free: the Snakefile imports it)
    config.py     the original's configuration dataclasses, benchmarks, protocols, overrides, job sizing (torch-free)
    core.py       the original module's names that strategy files run among (`NAMES`), and its reference code
                  (bilevel keeps that code in toy.py and hyperclean.py)
    <engine>.py   the fast path, checked against the reference: parity `batched.py`; bilevel `vectorised.py`
                  (the toy) and `methods.py` (hyper-cleaning); dpsgd `vectorised.py` (per-example gradients),
                  with `accounting.py` and `audit.py`
    driver.py     run one benchmark and print its lines; `DRIVER` for the shared skeleton `cli.py`
    __main__.py   `python -m optrepro.tasks.<task>` (the same as `python -m optrepro.tasks <task>`)
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from .spec import TaskSpec

BUILT_IN = {
    "parity": "optrepro.tasks.parity",
    "bilevel": "optrepro.tasks.bilevel",
    "dpsgd": "optrepro.tasks.dpsgd",
}
TASKS_ENV = "OPTREPRO_TASKS"


def registered() -> dict[str, str]:
    """Every task's name -> where its spec lives (a module name, or a .py file): the built-in ones, then those
    of OPTREPRO_TASKS."""
    found = dict(BUILT_IN)
    for item in filter(None, (part.strip() for part in os.environ.get(TASKS_ENV, "").split(","))):
        name, sep, where = item.partition("=")
        if not (sep and name.strip() and where.strip()):
            raise ValueError(f"{TASKS_ENV}: expected NAME=MODULE or NAME=FILE.py, got {item!r}")
        found[name.strip()] = where.strip()
    return found


def names() -> tuple[str, ...]:
    return tuple(registered())


def module_name(name: str) -> str:
    """The name under which a task's spec module is imported (a file's gets one of its own)."""
    where = registered()[name]
    return f"optrepro_task_{name}" if where.endswith(".py") else where


def external_files(name: str) -> list[Path]:
    """The file of a task registered as a .py file (processes that run it must be able to read it); none for
    a task that is a module of an installed package."""
    where = registered().get(name, "")
    return [Path(where).resolve()] if where.endswith(".py") else []


def load(name: str) -> ModuleType:
    """The module defining the task's TASK, imported once."""
    module = module_name(name)
    if module in sys.modules:
        return sys.modules[module]
    where = registered()[name]
    if not where.endswith(".py"):
        return importlib.import_module(module)
    spec = importlib.util.spec_from_file_location(module, where)
    if spec is None or not Path(where).is_file():
        raise ValueError(f"{TASKS_ENV}: task {name!r}: no file {where}")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[module] = loaded
    spec.loader.exec_module(loaded)
    return loaded


def get(name: str) -> TaskSpec:
    """The spec of a registered task; KeyError naming the known ones for any other."""
    if name not in registered():
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(names())}")
    task = getattr(load(name), "TASK", None)
    if not isinstance(task, TaskSpec) or task.name != name:
        raise ValueError(f"task {name!r}: {registered()[name]} must define TASK, a TaskSpec named {name!r}")
    return task


def find(name: str) -> TaskSpec | None:
    """The spec of a registered task, None for one this checkout does not know (a report may be rebuilt from
    the results of another checkout)."""
    return get(name) if name in registered() else None
