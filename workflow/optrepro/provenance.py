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
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from .files import sha256_file

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent.parent
RECORDED_PACKAGES = ("torch", "torchvision", "opacus", "snakemake", "numpy", "pandas", "scipy")


def module_file(module: str) -> Path | None:
    """The source file of an `optrepro` module or package, None for anything else."""
    if module != "optrepro" and not module.startswith("optrepro."):
        return None
    base = PACKAGE_DIR.parent.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def direct_imports(module: str) -> set[str]:
    """The `optrepro` modules one module imports anywhere in its source (imports inside functions included)."""
    path = module_file(module)
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
            found.update(f"{base}.{alias.name}" for alias in node.names if module_file(f"{base}.{alias.name}"))
    return {name for name in found if module_file(name) and name != module}


def imported_modules(module: str) -> set[str]:
    """`module` and every `optrepro` module that running it loads: imports, theirs, and their parent packages."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        todo += [*direct_imports(name), *parents]
    return seen


def driver_files(task: str) -> list[Path]:
    """The code a task's results depend on: every module its driver loads (found from the imports)."""
    return sorted(module_file(name) for name in imported_modules(f"optrepro.tasks.{task}.__main__"))


def sha256_tree(paths: list[Path]) -> str:
    """One digest over several files: their names relative to the package and their contents, sorted."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode())
        digest.update(bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()


def git_state(repo: Path = REPO_DIR) -> dict[str, object]:
    """Commit and dirty flag of the checkout the code ran from (None outside a git checkout)."""
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


# The driver's stderr line saying which device it runs on, printed where the runner asks for it (DEVICE_ENV=1;
# a driver run by hand keeps its stderr for errors); the runner records it and so imports no torch.
DEVICE_LINE = "OPTREPRO_DEVICE "
DEVICE_ENV = "OPTREPRO_REPORT_DEVICE"
DEVICE_FIELDS = ("resolved", "name", "cuda", "cuda_graphs")  # of DEVICE_LINE, which the record keeps


def device_info(requested: str, device) -> dict[str, object]:
    """What `--device requested` resolved to (`device`, a torch.device: tasks.cli.resolve_device), its name, and
    on CUDA whether steps are replayed as CUDA graphs."""
    import torch

    from .tasks.graphs import graphs_enabled

    use_cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if use_cuda else (platform.processor() or platform.machine())
    return {"requested": requested, "resolved": device.type, "name": name,
            "cuda": torch.version.cuda if use_cuda else None, "cuda_graphs": graphs_enabled() if use_cuda else None}


def device_from_stderr(lines: list[str], requested: str) -> dict[str, object]:
    """The driver's first DEVICE_LINE (printed before the strategy is loaded, so a strategy cannot forge it);
    without one (the driver failed earlier) only what was requested."""
    for line in lines:
        if line.startswith(DEVICE_LINE):
            try:
                found = json.loads(line[len(DEVICE_LINE):])
            except ValueError:
                break
            if isinstance(found, dict):
                return {"requested": requested, **{key: found.get(key) for key in DEVICE_FIELDS}}
            break
    return {"requested": requested, **dict.fromkeys(DEVICE_FIELDS)}


def cuda_visible() -> bool:
    """Whether this host has an NVIDIA GPU, without importing torch (the Snakefile is parsed often; runners
    must stay light)."""
    return shutil.which("nvidia-smi") is not None and os.environ.get("CUDA_VISIBLE_DEVICES", "0") != ""


def uses_cuda(requested: str) -> bool:
    """Whether a run asked for `--device requested` will use CUDA here (`cuda`, or `auto` on a GPU host), told
    without torch: for job resources and the sandbox's devices, before any driver starts."""
    return requested == "cuda" or (requested == "auto" and cuda_visible())


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
