"""The package's shape: no import circles, one layout for every task, torch-free task interfaces, driver hashes
that follow the imports, and strategy namespaces that list exactly the original modules' names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from optrepro.provenance import PACKAGE_DIR, direct_imports, driver_files, module_file
from optrepro.tasks import TASKS

REPO = Path(__file__).resolve().parent.parent
MODULES = sorted(".".join(("optrepro", *path.relative_to(PACKAGE_DIR).with_suffix("").parts)).removesuffix(".__init__")
                 for path in PACKAGE_DIR.rglob("*.py"))
TASK_FILES = {"__init__.py", "__main__.py", "config.py", "core.py", "driver.py"}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph` as a list of modules (first == last), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_anywhere_in_the_package():
    assert len(MODULES) > 30 and all(module_file(m) for m in MODULES)
    graph = {module: direct_imports(module) for module in MODULES}
    # A package importing its own submodules is how packages work, not a circle; a submodule importing
    # its package's other submodules through the package is.
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    assert find_cycle(graph) is None


def test_lazy_imports_count(tmp_path):
    assert "optrepro.provenance" in direct_imports("optrepro.plan")  # imported inside a function there


@pytest.mark.parametrize("task", TASKS)
def test_every_task_has_the_same_files(task):
    files = {p.name for p in (PACKAGE_DIR / "tasks" / task).glob("*.py")}
    assert TASK_FILES <= files


def run_fresh_python(code: str) -> None:
    """Run `code` in a new interpreter that sees only the package: what a job's start imports."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"PYTHONPATH": str(REPO / "workflow"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("task", TASKS)
def test_task_interface_and_config_import_no_torch(task):
    code = (f"import sys, optrepro.tasks.{task} as t, optrepro.tasks.{task}.config, optrepro.plan\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "for name in ('BENCHMARKS', 'PROTOCOLS', 'METRICS', 'DATASETS', 'OVERRIDE_FIELDS', 'parse_overrides',\n"
            "             'resolve_config', 'job_resources'):\n"
            "    assert hasattr(t, name), name\n")
    run_fresh_python(code)


def test_parity_and_bilevel_drivers_import_torchvision_only_when_a_strategy_uses_it():
    """About a second per process; the bilevel namespace still offers `datasets`, imported at first use."""
    code = ("import sys, optrepro.tasks.parity.driver as p, optrepro.tasks.bilevel.driver as b\n"
            "assert 'torchvision' not in sys.modules, 'torchvision imported'\n"
            "datasets = b.strategy_namespace()['datasets']\n"
            "import torchvision.datasets\n"
            "assert datasets.MNIST is torchvision.datasets.MNIST\n")
    run_fresh_python(code)


def test_driver_files_follow_the_imports():
    names = {str(p.relative_to(PACKAGE_DIR)) for p in driver_files("dpsgd")}
    assert {"data.py", "files.py", "metrics.py", "strategy.py", "tasks/cli.py", "tasks/scale.py",
            "tasks/dpsgd/vectorised.py", "tasks/dpsgd/audit.py", "tasks/dpsgd/accounting.py"} <= names
    assert not any(name.startswith(("tasks/parity", "tasks/bilevel", "report")) for name in names)
    assert "runner.py" not in names and "plan.py" not in names


# The names each original module offered its editable region (the task specifications, section 2).
ORIGINAL_NAMES = {
    "parity": ["argparse", "json", "math", "random", "Path", "asdict", "dataclass", "replace", "torch", "nn",
               "TaskConfig", "OptimizerConfig", "RunResult", "DEFAULT_TASK", "build_model", "set_global_seed",
               "sample_hidden_secrets", "parity_labels", "make_test_set", "normalize_dataset",
               "normalize_optimizer_config", "evaluate_accuracy", "maybe_log_final_window", "train_one_run",
               "resolve_device", "maybe_apply_smoke_mode", "run_benchmark", "parse_args", "main"],
    "bilevel": ["argparse", "json", "math", "os", "random", "sys", "time", "asdict", "dataclass", "Path", "torch",
                "nn", "F", "datasets", "ToyProblemConfig", "DEFAULT_TOY", "ToyStrategy", "HypercleanConfig",
                "DEFAULT_HYPERCLEAN", "HypercleanStrategy", "HypercleanEval", "HypercleanSplit",
                "set_global_seed", "sum_squared_norm", "toy_f", "toy_df", "toy_g", "toy_dg",
                "toy_gpbgd_penalty_grad", "toy_penalized_gradient", "project_x", "run_toy", "resolve_dataset_root",
                "load_hyperclean_splits", "make_model", "compute_accuracy", "compute_cleaner_metrics",
                "make_eval_record", "update_best_by_accuracy", "update_best_by_f1", "summarize_hyperclean_metrics",
                "yforward", "run_v_pbgd", "run_g_pbgd", "run_rhg_family", "run_hyperclean", "parse_args",
                "resolve_device", "main"],
    "dpsgd": ["argparse", "math", "os", "sys", "np", "torch", "nn", "F", "optim", "sp_optimize", "DataLoader",
              "Subset", "datasets", "transforms", "compute_epsilon", "calibrate_noise_to_epsilon", "MNISTNet",
              "CIFAR10Net", "compute_per_sample_gradients"],
}
# Names of this project's own offered beside them (the correct toy derivative, the start points and the
# original's own toy loop, which strategies may call to compare).
ADDED_NAMES = {"parity": set(), "dpsgd": set(),
               "bilevel": {"toy_df_exact", "toy_starting_points", "run_toy_reference"}}


@pytest.mark.parametrize("task", TASKS)
def test_strategy_namespace_is_the_original_modules_names(task):
    import importlib

    namespace = importlib.import_module(f"optrepro.tasks.{task}.driver").strategy_namespace()
    assert set(namespace) == set(ORIGINAL_NAMES[task]) | ADDED_NAMES[task]
    assert all(value is not None for value in namespace.values())
