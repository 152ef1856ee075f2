"""The package's shape: no import circles, one layout for every task, whole and torch-free task specs, driver
hashes that follow the imports, and strategy namespaces that list exactly the original modules' names."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from optrepro.data.sources import DATASETS
from optrepro.provenance import PACKAGE_DIR, direct_imports, driver_files, imported_modules, module_file
from optrepro.tasks import BUILT_IN, get
from optrepro.tasks.scale import TaskConfigError

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


def test_imports_inside_functions_count():
    """plan.retry_failed_fetches imports the data manifest where it runs, not at the top of plan.py."""
    top = {node.module for node in ast.parse((PACKAGE_DIR / "plan.py").read_text()).body
           if isinstance(node, ast.ImportFrom) and node.module}
    assert "data.manifest" not in top and "optrepro.data.manifest" in direct_imports("optrepro.plan")


@pytest.mark.parametrize("task", BUILT_IN)
def test_every_task_has_the_same_files(task):
    files = {p.name for p in (PACKAGE_DIR / "tasks" / task).glob("*.py")}
    assert TASK_FILES <= files


def run_fresh_python(code: str) -> None:
    """Run `code` in a new interpreter with nothing of this one's environment: what a job's start imports."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin"}, cwd="/")
    assert result.returncode == 0, result.stderr


def test_the_package_imports_from_any_folder_and_carries_its_schema():
    run_fresh_python("import optrepro, optrepro.configuration as c; assert optrepro.__version__ != 'unknown'; "
                     "assert c.SCHEMA.is_file()")


def test_a_wheel_holds_the_whole_package(tmp_path):
    """Installed from a wheel (not the checkout), the package finds its schema and its report templates: the
    data files it reads ship inside it."""
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    for name in ("pyproject.toml", "README.md", "LICENSE", "requirements.txt", "requirements-dev.txt"):
        source.mkdir(exist_ok=True)
        shutil.copy(REPO / name, source / name)
    shutil.copytree(PACKAGE_DIR, source / "workflow" / "optrepro", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "wheel"), str(source)], check=True, capture_output=True, timeout=600)
    [wheel] = (tmp_path / "wheel").glob("optrepro-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                    str(tmp_path / "site"), str(wheel)], check=True, capture_output=True, timeout=600)
    code = ("import optrepro, optrepro.configuration as c, optrepro.report.render as r; "
            f"assert optrepro.__file__.startswith({str(tmp_path / 'site')!r}), optrepro.__file__; "
            "assert c.SCHEMA.is_file() and '| `seeds` |' in c.readme(); "
            "assert (r.Path(r.__file__).parent / 'templates' / 'report.html.j2').is_file()")
    # the wheel's folder first, as an installed package would be (and the checkout's editable install after it)
    result = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r}); "
                             + code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("task", BUILT_IN)
def test_task_specs_and_the_plan_import_no_torch(task):
    code = (f"import sys, optrepro.tasks as t, optrepro.plan, optrepro.runner, optrepro.report.captions\n"
            f"spec = t.get({task!r})\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            f"spec.resolve_config(next(iter(spec.benchmarks)), 'mlsbench', {{}})\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
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
    assert {"data/manifest.py", "files.py", "metrics.py", "strategy.py", "device.py", "tasks/cli.py",
            "tasks/__main__.py", "tasks/scale.py", "tasks/spec.py", "tasks/dpsgd/driver.py",
            "tasks/dpsgd/vectorised.py", "tasks/dpsgd/audit.py", "tasks/dpsgd/accounting.py"} <= names
    assert not any(name.startswith(("tasks/parity", "tasks/bilevel", "report")) for name in names)
    assert "runner.py" not in names and "plan.py" not in names and "data/sources.py" not in names


def test_no_arrow_up_from_the_base_modules():
    """The device, provenance and data modules serve plan, runner and drivers alike: none imports a task, the
    driver skeleton or the report."""
    for module in ("optrepro.device", "optrepro.provenance", "optrepro.data.manifest", "optrepro.files"):
        assert not {m for m in direct_imports(module) if m.startswith(("optrepro.tasks.", "optrepro.report"))
                    and m not in ("optrepro.tasks.scale", "optrepro.tasks.spec")}, module
    for task in BUILT_IN:  # the original's names a strategy runs among: nothing of the driver skeleton
        assert "optrepro.tasks.cli" not in imported_modules([f"optrepro.tasks.{task}.core"]), task


@pytest.mark.parametrize("task", BUILT_IN)
def test_the_spec_is_whole_and_consistent(task):
    spec = get(task)
    assert spec.name == task and spec.problems() == []
    assert spec.driver == f"optrepro.tasks.{task}.driver" and spec.load_driver().task == task
    assert spec.override_fields and spec.parse_overrides([]) == {}
    with pytest.raises(TaskConfigError, match="no_such_field"):
        spec.parse_overrides(["no_such_field=1"])
    for benchmark in spec.benchmarks:
        for protocol in spec.protocols:
            spec.resolve_config(benchmark, protocol, {})
            sized = spec.job_resources(benchmark, protocol, [])
            assert set(sized) == {"mem_mb", "runtime"} and min(sized.values()) > 0
    for figure in spec.figures:
        assert callable(figure.drawer())
    assert set(spec.datasets.values()) <= set(DATASETS)


def test_an_impossible_metric_value_is_named():
    parity, dpsgd = get("parity"), get("dpsgd")
    assert parity.out_of_range({"test_accuracy": 0.9, "num_runs": 15, "score": 1e308}) is None  # score: undeclared
    assert parity.out_of_range({"test_accuracy": 1.5}) == "test_accuracy=1.5 is outside its range [0, 1]"
    assert parity.out_of_range({"test_accuracy": float("nan")}) == "test_accuracy=nan is not a finite number"
    assert dpsgd.out_of_range({"score": 1e308, "epsilon": -0.0}) == "score=1e+308 is outside its range [0, 100]"
    assert dpsgd.out_of_range({"epsilon": float("inf")}) == "epsilon=inf is not a finite number"
    assert dpsgd.out_of_range({"audit": "ok", "epsilon": 3.0}) is None


def test_a_spec_that_contradicts_itself_is_refused():
    good = get("parity")
    with pytest.raises(ValueError, match=r"task 'parity': metric 'test_accuracy': direction 'better'"):
        replace(good, metrics={**good.metrics, "test_accuracy": "better"})
    with pytest.raises(ValueError, match=r"headline of 'n32-k8': 'nothing' is not a declared metric"):
        replace(good, headline={"n32-k8": "nothing"})
    with pytest.raises(ValueError, match=r"the first protocol must be mlsbench"):
        replace(good, protocols={"corrected": {}, "mlsbench": {}})
    with pytest.raises(ValueError, match=r"datasets: unknown benchmark 'n99-k8'"):
        replace(good, datasets={"n99-k8": "mnist"})
    with pytest.raises(ValueError, match=r"metric 'mean_steps': no range"):
        replace(good, ranges={"test_accuracy": (0, 1), "test_accuracy_std": (0, 1)})
    with pytest.raises(ValueError, match=r"range of 'test_accuracy': 1 > 0"):
        replace(good, ranges={**good.ranges, "test_accuracy": (1, 0)})


@pytest.mark.parametrize("task", BUILT_IN)
def test_strategy_namespace_is_the_original_modules_names(task):
    spec = get(task)
    namespace = spec.load_driver().namespace()
    assert set(namespace) == set(spec.original_names) | set(spec.added_names)
    assert all(value is not None for value in namespace.values())
