"""The run record (`record.json`): everything needed to defend one number.

One place builds it, so every task records the same fields: identity,
status and error, final metrics, hashes of the strategy, the driver code and
the data, the resolved configuration, git state, software versions, device,
host and timing.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from .files import sha256_file

PACKAGE_DIR = Path(__file__).resolve().parent
RECORDED_PACKAGES = ("optrepro", "torch", "torchvision", "opacus", "snakemake", "numpy", "pandas", "scipy")


def module_file(module: str, roots: frozenset[str] = frozenset({"optrepro"})) -> Path | None:
    """The source file of a module of `roots` (top-level package names: optrepro, and a task's own outside it),
    None for anything else (third-party code is recorded by its version)."""
    root = module.partition(".")[0]
    if root not in roots:
        return None
    if root == "optrepro":
        base = PACKAGE_DIR.parent.joinpath(*module.split("."))
        candidates = (base.with_suffix(".py"), base / "__init__.py")
    else:
        loaded = sys.modules.get(module)
        try:
            origin = getattr(loaded, "__file__", None) or importlib.util.find_spec(module).origin
        except (ImportError, AttributeError, ValueError):
            return None
        candidates = (Path(origin),) if origin else ()
    return next((path for path in candidates if path.is_file()), None)


def direct_imports(module: str, roots: frozenset[str] = frozenset({"optrepro"})) -> set[str]:
    """The modules of `roots` one module imports anywhere in its source (imports inside functions included)."""
    path = module_file(module, roots)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[:len(parts) - node.level + 1]) if node.level else node.module
            if node.level and node.module:
                base = f"{base}.{node.module}"
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if module_file(f"{base}.{alias.name}", roots))
    return {name for name in found if module_file(name, roots) and name != module}


def imported_modules(modules: list[str], roots: frozenset[str] = frozenset({"optrepro"})) -> set[str]:
    """`modules` and every module of `roots` that running them loads: imports, theirs, and their parent
    packages."""
    seen, todo = set(), list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        todo += [*direct_imports(name, roots), *parents]
    return seen


def driver_files(task: str) -> list[Path]:
    """The code a task's results depend on: every module its driver loads, found from the imports of the
    drivers' entry point and of the task's driver module (which the registry imports by name), the task's own
    files outside optrepro included."""
    from . import tasks

    driver = tasks.get(task).driver  # loads a task registered as a file, so that its module can be found
    roots = frozenset({"optrepro", tasks.module_name(task).partition(".")[0], driver.partition(".")[0]})
    return sorted({module_file(name, roots) for name in imported_modules(["optrepro.tasks.__main__", driver], roots)})


def sha256_tree(paths: list[Path]) -> str:
    """One digest over several files: their names (relative to the package; a file outside it by its own name)
    and their contents, sorted."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(PACKAGE_DIR) if path.is_relative_to(PACKAGE_DIR) else path.name).encode())
        digest.update(bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()


def git_state(repo: Path = PACKAGE_DIR) -> dict[str, object]:
    """Commit and dirty flag of the checkout the code ran from (None outside one, e.g. a package installed from
    a wheel, which its recorded version identifies)."""
    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def environment() -> dict[str, object]:
    versions = {}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": sys.version.split()[0], "implementation": platform.python_implementation(),
            "platform": platform.platform(), "host": socket.gethostname(), "packages": versions}


def run_record(identity: dict[str, object], error: str | None, metrics: dict[str, object], *, strategy_path: str,
               data_hashes: dict[str, str], config: dict[str, object], command: list[str], exit_status: int,
               device: dict[str, object], started: datetime, wall_seconds: float,
               notes: list[str], sandbox: str) -> dict[str, object]:
    """The record of one finished run, failed or not; `data_hashes` the sha256 of the dataset files it read (by
    path), `notes` what a reader of its numbers must know (e.g. a dataset cut by the scale's row cap), `sandbox`
    what the driver ran in (bwrap or none)."""
    return {
        **identity, "status": "failed" if error else "ok", "error": error, "metrics": metrics, "notes": notes,
        "hashes": {"strategy": sha256_file(strategy_path), "driver": sha256_tree(driver_files(identity["task"])),
                   "data": data_hashes},
        "config": config, "command": command, "exit_status": exit_status,
        "git": git_state(), "environment": environment(), "device": device, "sandbox": sandbox,
        "start": started.isoformat(timespec="seconds"),
        "end": datetime.now(timezone.utc).isoformat(timespec="seconds"), "wall_seconds": round(wall_seconds, 3),
        "strategy_path": strategy_path,
    }
