"""The run record (`record.json`): everything needed to defend one number.

One place builds it, so every task records the same fields: identity,
status and error, final metrics, hashes of the strategy, the driver package
and the data, the resolved configuration, git state, software versions,
device, host and timing.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from .strategy import sha256_file

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent.parent
UMASK = os.umask(0o022)
os.umask(UMASK)
RECORDED_PACKAGES = ("torch", "torchvision", "opacus", "snakemake", "numpy", "pandas", "scipy")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                     delete=False) as handle:
        handle.write(text)
    os.chmod(handle.name, 0o666 & ~UMASK)  # NamedTemporaryFile creates 0600; outputs are ordinary files
    os.replace(handle.name, path)


def replace_folder(build: Path, target: Path) -> None:
    """Rename a finished folder `build` to `target`; an existing target is moved aside first, then removed."""
    if not target.exists():
        build.rename(target)
        return
    trash = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
    target.rename(trash / target.name)
    build.rename(target)
    shutil.rmtree(trash)


def write_json_atomic(path: str | Path, data: object) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def sha256_tree(paths: list[Path]) -> str:
    """One digest over several files: their names relative to the package and their contents, sorted."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode())
        digest.update(bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()


def driver_files(task: str) -> list[Path]:
    """The code a task's result depends on: its driver package and the shared modules it uses."""
    shared = ["metrics.py", "strategy.py", "tasks/scale.py", "tasks/device.py"]
    return sorted((PACKAGE_DIR / "tasks" / task).glob("*.py")) + [PACKAGE_DIR / name for name in shared]


def data_hashes(paths: list[str | Path]) -> dict[str, str]:
    """sha256 of every file under the given files or folders."""
    hashes = {}
    for root in map(Path, paths):
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        hashes.update({str(f): sha256_file(f) for f in files})
    return hashes


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


def device_info(requested: str) -> dict[str, object]:
    """What `--device auto|cpu|cuda` resolves to on this host, and the device's name."""
    import torch

    use_cuda = requested != "cpu" and torch.cuda.is_available()
    name = torch.cuda.get_device_name(0) if use_cuda else (platform.processor() or platform.machine())
    return {"requested": requested, "resolved": "cuda" if use_cuda else "cpu", "name": name,
            "cuda": torch.version.cuda if use_cuda else None}
