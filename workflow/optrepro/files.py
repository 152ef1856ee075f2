"""File primitives used everywhere: sha256 of files, atomic writes, atomic folder swaps.

Why one module: every output of the workflow (records, tables, datasets,
report folders) must be written so that a reader never sees half of it, and
every hash in a record must be computed the same way. Nothing here knows
about runs, tasks or reports.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import pandas as pd

UMASK = os.umask(0o022)
os.umask(UMASK)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                     delete=False) as handle:
        handle.write(text)
    os.chmod(handle.name, 0o666 & ~UMASK)  # NamedTemporaryFile creates 0600; outputs are ordinary files
    os.replace(handle.name, path)


def clear(path: str | Path) -> None:
    """Remove whatever is at `path` (a file, a link, a folder tree), so that a file can be written there."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def write_json_atomic(path: str | Path, data: object) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def write_csv_atomic(table: pd.DataFrame, path: str | Path) -> None:
    write_text_atomic(path, table.to_csv(index=False))


def replace_folder(build: Path, target: Path) -> None:
    """Rename a finished folder `build` to `target`; an existing target is moved aside first, then removed."""
    if not target.exists():
        build.rename(target)
        return
    trash = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
    target.rename(trash / target.name)
    build.rename(target)
    shutil.rmtree(trash)


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `path`; on success it replaces `path` (two renames), on failure it goes.

    A reader or a re-run never takes a half-written folder for a finished one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging)
        raise
    os.chmod(staging, 0o777 & ~UMASK)  # mkdtemp makes it private
    replace_folder(staging, path)
