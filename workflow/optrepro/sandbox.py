"""Processes of untrusted code: bubblewrap where the host allows it, and how they start, end and died.

A strategy is untrusted code. Its driver runs under `bwrap`: the whole file
system read-only (the repository, the code, the datasets), writable only its
own run directory and a private `/tmp`, no network (a new network namespace
with nothing in it), its own process tree (nothing survives it) and an
unprivileged user ID (nobody) in a user namespace. Parity and bilevel
strategies run in a second, nested sandbox inside it (optrepro.strategy_host).

`sandbox: auto | bwrap | none` in the configuration (`--sandbox` of the
runner): `auto` uses bwrap when it works here; otherwise the run is recorded
`unsandboxed` (not ranked) and is confined with what the host offers instead
(optrepro.confine: unshare's namespaces, bwrap's layout, setpriv dropping every
capability), or runs bare where even that cannot start, the record's note
saying which; `bwrap` makes a host without it fail the run instead; `none`
never sandboxes.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

MODES = ("auto", "bwrap", "none")
# What a run's record says where `auto` could not use bwrap: unlike `none` (the user's word that the strategies are
# trusted), such a run is not ranked (report.summarize), since its strategy could have reached its numbers.
UNSANDBOXED = "unsandboxed"
SANDBOX_ENV = "OPTREPRO_SANDBOX"  # the mode, from the runner to the driver, which sandboxes the strategy's process
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 1, 4, 36
PACKAGE_PARENT = Path(__file__).resolve().parent.parent  # where `import optrepro` finds this package
NOBODY = "65534"
PROBE_TIMEOUT_S = 30
# What confinement (where `auto` found no bwrap) does and, unlike bwrap, does not do, for the record.
CONFINED = ("confined instead by unshare and setpriv: the file system read-only but for its run directory and "
            "a private /tmp, results/ hidden, no network, its own process tree, no capabilities; unlike bwrap, "
            "the user is unchanged, the host's /dev is visible, and the strategy's process shares the driver's "
            "confinement, the data root visible to it")


class SandboxError(RuntimeError):
    """`bwrap` was required but cannot run here."""


def isolation(cuda: bool, nested: bool = False) -> list[str]:
    """bwrap's options that do not depend on the run: namespaces, user, devices, a private /tmp. `nested`: for a
    sandbox inside the driver's (the strategy's process), which may not mount a new /proc (it sees the driver's)
    and stays in the driver's process group, so that ending the driver's group ends it too."""
    devices = ["--dev-bind", "/dev", "/dev"] if cuda else ["--dev", "/dev"]  # CUDA needs the host's /dev/nvidia*
    session = [] if nested else ["--new-session"]
    proc = [] if nested else ["--proc", "/proc"]
    return ["--die-with-parent", "--unshare-all", *session, "--uid", NOBODY, "--gid", NOBODY,
            "--ro-bind", "/", "/", *devices, *proc, "--tmpfs", "/tmp", "--setenv", "HOME", "/tmp"]


@functools.cache
def unavailable(nested: bool = False) -> str | None:
    """Why bwrap cannot sandbox a process on this host (None when it can), found by trying once."""
    executable = shutil.which("bwrap")
    if executable is None:
        return "bwrap is not installed (Debian package bubblewrap)"
    try:
        result = subprocess.run([executable, *isolation(cuda=False, nested=nested), "--", "true"],
                                capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bwrap cannot start: {error}"
    if result.returncode != 0:
        return "bwrap cannot start: " + (" ".join(result.stderr.split()) or f"exit status {result.returncode}")
    return None


def mounts(read_only: list[Path], writable: Path, hidden: list[Path] = ()) -> list[str]:
    """Bind the paths the driver reads (those under /tmp, which the private /tmp hides, and every other one for
    good measure) read-only, parents before children; then mount an empty folder over each `hidden` one (and
    bind again the paths read inside it); then its writable folder."""
    paths = sorted({p.resolve() for p in read_only}, key=lambda p: len(p.parts))
    hidden = [path.resolve() for path in hidden if path.is_dir()]
    inside = [path for path in paths if any(path.is_relative_to(folder) for folder in hidden)]
    options = [option for path in paths for option in ("--ro-bind", str(path), str(path))]
    options += [option for folder in hidden for option in ("--tmpfs", str(folder))]
    options += [option for path in inside for option in ("--ro-bind", str(path), str(path))]
    return options + ["--bind", str(writable.resolve()), str(writable.resolve())]


def wrap(command: list[str], mode: str, writable: Path, read_only: list[Path], cuda: bool,
         cwd: Path, hidden: list[Path] = (), nested: bool = False) -> tuple[list[str], str, str | None]:
    """The command to run, the sandbox it runs in (`bwrap`, `none`, or UNSANDBOXED where `auto` could not use
    bwrap: then confined, where that can start) and a note for the record when `auto` fell back; raises
    SandboxError when `bwrap` was required and cannot run. `writable` is the one folder it may write (a driver's
    run directory, a strategy's exchange folder); `hidden` folders appear empty."""
    if mode not in MODES:
        raise SandboxError(f"unknown sandbox {mode!r}: expected one of {', '.join(MODES)}")
    if mode == "none":
        return command, "none", None
    reason = unavailable(nested)
    if reason:
        if mode == "bwrap":
            raise SandboxError(f"sandbox bwrap required but unavailable: {reason}")
        if why_not := unconfinable():
            return command, UNSANDBOXED, f"ran without a sandbox: {reason}; nor confined: {why_not}"
        return confined(command, writable, [*read_only, cwd], cwd, hidden), UNSANDBOXED, \
            f"ran without a sandbox: {reason}; {CONFINED}"
    wrapped = [shutil.which("bwrap"), *isolation(cuda, nested), *mounts([*read_only, cwd], writable, hidden),
               "--chdir", str(cwd.resolve()), "--", *command]
    return wrapped, "bwrap", None


def confined(command: list[str], writable: Path, read_only: list[Path], cwd: Path, hidden: list[Path]) -> list[str]:
    """`command` in new mount, network and process namespaces with bwrap's layout (optrepro.confine); as root
    without a user namespace (which could not map root), otherwise in one."""
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    # setpriv's real path: it starts once /tmp is private, where a link to it under /tmp would be gone.
    return [shutil.which("unshare"), *user, "--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc",
            "--", sys.executable, "-m", "optrepro.confine", "--setpriv", str(Path(shutil.which("setpriv")).resolve()),
            *mounts(read_only, writable, hidden), "--chdir", str(cwd.resolve()), "--setenv", "HOME", "/tmp",
            "--", *command]


@functools.cache
def unconfinable() -> str | None:
    """Why `confined` cannot run here (None when it can), found by trying once."""
    missing = [name for name in ("unshare", "setpriv") if shutil.which(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (Debian package util-linux)"
    with tempfile.TemporaryDirectory(prefix="optrepro-probe-") as folder:
        probe = confined([sys.executable, "-c", ""], Path(folder), code_paths(), Path(folder), [])
        try:
            result = subprocess.run(probe, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"unshare cannot start: {error}"
    if result.returncode != 0:
        return "unshare cannot start: " + (" ".join(result.stderr.split()) or f"exit status {result.returncode}")
    return None


def code_paths(*extra: Path) -> list[Path]:
    """What a child `python -m optrepro...` reads besides its inputs: this package (installed, or the checkout an
    editable install points to), the interpreter's environment, and `extra` (a task's own files outside both)."""
    return [PACKAGE_PARENT, Path(sys.prefix), Path(sys.base_prefix), *extra]


def child_env(**updates: str) -> dict[str, str]:
    """The environment of a child `python -m optrepro...` (the same interpreter, which has this package
    installed): this one, unbuffered, with `updates`."""
    return dict(os.environ, PYTHONUNBUFFERED="1", **updates)


def prctl(option: int, value: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(option, value)


def die_with_parent() -> None:
    """In the child before exec: the kernel sends SIGKILL when its parent (the runner, the driver) dies, however
    it dies (Linux)."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def become_subreaper() -> None:
    """Orphans below this process (a double-forked daemon whose parent exited) become its children instead of
    init's, so that end_descendants finds them."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def children() -> set[int]:
    """The live child processes of this one, from /proc (zombies left out: only reaping ends them)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        state, ppid = stat.rpartition(")")[2].split()[:2]  # after the command's name, which may hold spaces
        if int(ppid) == os.getpid() and state != "Z":
            found.add(int(entry.name))
    return found


def end_descendants() -> None:
    """SIGKILL every process still below this one, and reap it: what a run started does not outlive it."""
    while pids := children():
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def undumpable() -> None:
    """Make this process's /proc/<pid>/{mem,fd,...} root's: another process of the same user (its strategy's)
    can then neither read its memory nor open its file descriptors."""
    prctl(PR_SET_DUMPABLE, 0)


def death_reason(returncode: int) -> str | None:
    """Why a process that died of a signal (negative return code) died, in words; None when it exited."""
    if returncode >= 0:
        return None
    signum = -returncode
    if signum == signal.SIGKILL:
        return "killed by SIGKILL (out of memory?)"
    if signum == signal.SIGINT:
        return "interrupted"
    try:
        return f"killed by {signal.Signals(signum).name}"
    except ValueError:
        return f"killed by signal {signum}"


def unwrapped_status(returncode: int, sandboxed: bool) -> int:
    """The sandboxed process's own status: bwrap reports a death by signal N as exit status 128 + N, turned
    back into -N here."""
    if sandboxed and 128 < returncode <= 128 + signal.SIGRTMAX:
        return 128 - returncode
    return returncode
