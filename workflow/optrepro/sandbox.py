"""The driver's sandbox: bubblewrap, where the host allows it.

A strategy is untrusted code and runs inside its driver. Under `bwrap` the
driver sees the whole file system read-only (the repository, the code, the
datasets), may write only its own run directory and a private `/tmp`, has no
network (a new network namespace with nothing in it), its own process tree
(nothing survives it) and an unprivileged user ID (nobody) in a user namespace.

`sandbox: auto | bwrap | none` in the configuration (`--sandbox` of the
runner): `auto` uses bwrap when it works here and otherwise runs unsandboxed
with a note in the record (many clusters do not allow user namespaces);
`bwrap` makes a host without it fail the run instead; `none` never sandboxes.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

MODES = ("auto", "bwrap", "none")
NOBODY = "65534"
PROBE_TIMEOUT_S = 30


class SandboxError(RuntimeError):
    """`bwrap` was required but cannot run here."""


def isolation(cuda: bool) -> list[str]:
    """bwrap's options that do not depend on the run: namespaces, user, devices, a private /tmp."""
    devices = ["--dev-bind", "/dev", "/dev"] if cuda else ["--dev", "/dev"]  # CUDA needs the host's /dev/nvidia*
    return ["--die-with-parent", "--unshare-all", "--new-session", "--uid", NOBODY, "--gid", NOBODY,
            "--ro-bind", "/", "/", *devices, "--proc", "/proc", "--tmpfs", "/tmp", "--setenv", "HOME", "/tmp"]


@functools.cache
def unavailable() -> str | None:
    """Why bwrap cannot sandbox a process on this host (None when it can), found by trying once."""
    executable = shutil.which("bwrap")
    if executable is None:
        return "bwrap is not installed (Debian package bubblewrap)"
    try:
        result = subprocess.run([executable, *isolation(cuda=False), "--", "true"], capture_output=True,
                                text=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bwrap cannot start: {error}"
    if result.returncode != 0:
        return "bwrap cannot start: " + (" ".join(result.stderr.split()) or f"exit status {result.returncode}")
    return None


def mounts(read_only: list[Path], writable: Path) -> list[str]:
    """Bind the paths the driver reads (those under /tmp, which the private /tmp hides, and every other one for
    good measure) read-only, then its run directory writable; parents before children."""
    options = []
    for path in sorted({p.resolve() for p in read_only}, key=lambda p: len(p.parts)):
        options += ["--ro-bind", str(path), str(path)]
    return options + ["--bind", str(writable.resolve()), str(writable.resolve())]


def wrap(command: list[str], mode: str, run_dir: Path, read_only: list[Path], cuda: bool,
         cwd: Path) -> tuple[list[str], str, str | None]:
    """The command to run, the sandbox it runs in (`bwrap` or `none`) and a note for the record when `auto`
    fell back; raises SandboxError when `bwrap` was required and cannot run."""
    if mode not in MODES:
        raise SandboxError(f"unknown sandbox {mode!r}: expected one of {', '.join(MODES)}")
    if mode == "none":
        return command, "none", None
    reason = unavailable()
    if reason:
        if mode == "bwrap":
            raise SandboxError(f"sandbox bwrap required but unavailable: {reason}")
        return command, "none", f"ran without a sandbox: {reason}"
    wrapped = [shutil.which("bwrap"), *isolation(cuda), *mounts([*read_only, cwd], run_dir), "--chdir",
               str(cwd.resolve()), "--", *command]
    return wrapped, "bwrap", None
