"""Writing a folder of outputs (figures, LaTeX tables) so that nobody ever sees half of it."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..provenance import replace_folder


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
    os.chmod(staging, 0o755)  # mkdtemp makes it private
    replace_folder(staging, path)
