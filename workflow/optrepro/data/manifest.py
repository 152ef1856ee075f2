"""A fetched dataset's record: the manifest it was verified against, the hashes of its files now, the fetch's status.

The runner and the plan read these before any run reads a dataset (the fetch itself is `sources.py`): each
dataset folder `<root>/<dataset>/` has beside it its manifest `<dataset>.sha256.json` (written when the fetch
published the folder), a hash cache `<dataset>.hashed.json` and, in the workflow, the fetch's outcome
`<dataset>.status.json`. Torch-free and quick to import.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

from ..files import sha256_file, write_json_atomic

# The drivers read the datasets under the folder this variable names (the runner sets it from the workflow's
# `data.root`); a driver run by hand without it looks where the original benchmark looked.
DATA_ROOT_ENV = "DATA_ROOT"
ORIGINAL_DATA_ROOT = "/data"


def root_from_environment() -> str:
    """The data root a driver reads: DATA_ROOT, else the original benchmark's /data."""
    return os.environ.get(DATA_ROOT_ENV, ORIGINAL_DATA_ROOT)


class DataError(Exception):
    """A fetch that cannot succeed; the message is the one line the CLI prints."""


def verify(folder: Path, manifest: Mapping[str, str]) -> list[str]:
    """One line per manifest file that is missing or whose sha256 differs; empty when the folder is ready."""
    problems = []
    for relative, expected in manifest.items():
        path = folder / relative
        if not path.is_file():
            problems.append(f"{relative}: missing")
        elif (actual := sha256_file(path)) != expected:
            problems.append(f"{relative}: sha256 mismatch, expected {expected}, got {actual}")
    return problems


def manifest_path(root: str | Path, dataset: str) -> Path:
    """Where a fetch records the manifest its dataset was verified against: beside the folder."""
    return Path(root, f"{dataset}.sha256.json")


def read_manifest(root: str | Path, dataset: str) -> dict:
    """The recorded manifest (`archives`, `files`); empty when there is none or it cannot be read."""
    try:
        recorded = json.loads(manifest_path(root, dataset).read_text())
        return recorded if isinstance(recorded, dict) and isinstance(recorded.get("files"), dict) else {}
    except (OSError, ValueError):
        return {}


def hashes_now(root: str | Path, dataset: str) -> tuple[dict[str, str], list[str]]:
    """A fetched dataset as it is now: sha256 of each file of the manifest recorded at its fetch, and the files
    that differ from that manifest (changed or missing), for a run to check before it reads them.

    Hashes are cached beside the folder (`<dataset>.hashed.json`) with each file's size, mtime, ctime and inode,
    so a file is read again only after it changed: the cost is one stat per file and run, and a hash per change.
    The ctime is what makes this hold: a write that restores the mtime (os.utime) still moves it, and only a
    change of the system clock can set it back.
    """
    manifest = read_manifest(root, dataset).get("files")
    if not manifest:
        raise DataError(f"dataset {dataset}: no manifest recorded at its fetch ({manifest_path(root, dataset)}); "
                        "fetch it again")
    cache_path = Path(root, f"{dataset}.hashed.json")
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    hashes, fresh = {}, {}
    for relative in manifest:
        path = Path(root, dataset, relative)
        try:
            stat = path.stat()
        except OSError:
            continue
        key = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
        cached = cache.get(relative)
        hashes[relative] = cached[-1] if cached and cached[:-1] == key else sha256_file(path)
        fresh[relative] = [*key, hashes[relative]]
    if fresh != cache:
        write_json_atomic(cache_path, fresh)
    return hashes, [relative for relative, digest in manifest.items() if hashes.get(relative) != digest]


def recorded_files(root: Path, dataset: str, archives: Mapping[str, str]) -> dict[str, str]:
    """The files' manifest derived at an earlier fetch from archives that `archives` still vouches for."""
    recorded = read_manifest(root, dataset)
    derived_from = recorded.get("archives") or {}
    return recorded["files"] if derived_from and derived_from.items() <= dict(archives).items() else {}


def file_hashes(folder: Path) -> dict[str, str]:
    """Every file under `folder` by its relative path, with its sha256."""
    return {str(path.relative_to(folder)): sha256_file(path) for path in sorted(folder.rglob("*")) if path.is_file()}


def status_path(root: str | Path, dataset: str) -> Path:
    """Where `fetch --status` records a dataset's outcome in the workflow: beside its folder."""
    return Path(root, f"{dataset}.status.json")


def read_status(path: str | Path) -> dict:
    """A status file written by `fetch --status`; a missing or unreadable one reads as failed."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        return {"status": "failed", "error": f"cannot read fetch status {path}: {exc}"}

