"""Bubblewrap's file-system layout where bubblewrap cannot run, from `unshare` and `setpriv` (util-linux).

`sandbox.confined` starts `unshare --mount --net --pid --fork --mount-proc -- python -m optrepro.confine
[bwrap's --ro-bind/--bind/--tmpfs/--chdir/--setenv options] -- COMMAND`. Inside the new namespaces this
makes every mount read-only (in its own copy of the mount table; the host's stays as it was), mounts a
private /tmp and /dev/shm, lays out the same binds bwrap would (sandbox.mounts: read-only inputs, hidden
folders, the one writable folder), then drops every capability and forbids new privileges (setpriv) and
runs COMMAND: it can then neither remount nor reach beyond what bwrap would show it, except what differs
from bwrap (sandbox.CONFINED). Binds read their sources through descriptors opened before the first
mount, so a source under /tmp or under a hidden folder is still found.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 1024, 2048, 4096, 16384, 1 << 18, 1 << 21
# statvfs's flags of a mount that an unprivileged remount must keep (a user namespace locks them).
KEPT = {os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV, os.ST_NOEXEC: MS_NOEXEC, os.ST_NOATIME: MS_NOATIME,
        os.ST_NODIRATIME: MS_NODIRATIME, os.ST_RELATIME: MS_RELATIME}
KERNEL_FILE_SYSTEMS = ("/proc", "/sys")  # left as the kernel and unshare mounted them
PRIVATE = ("/tmp", "/dev/shm")
USAGE = "python -m optrepro.confine --setpriv PATH [--ro-bind SRC DST | --bind SRC DST | --tmpfs DST | " \
        "--chdir DIR | --setenv NAME VALUE]... -- COMMAND..."
ARITY = {"--setpriv": 1, "--ro-bind": 2, "--bind": 2, "--tmpfs": 1, "--chdir": 1, "--setenv": 2}

libc = ctypes.CDLL(None, use_errno=True)


def encoded(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    if libc.mount(encoded(source), encoded(target), encoded(fstype), ctypes.c_ulong(flags), encoded(data)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount {target}: {os.strerror(error)}")


def kept_flags(target: str) -> int:
    flags = os.statvfs(target).f_flag
    return sum(mount_flag for statvfs_flag, mount_flag in KEPT.items() if flags & statvfs_flag)


def set_read_only(target: str, read_only: bool = True) -> None:
    mount(None, target, None, MS_REMOUNT | MS_BIND | kept_flags(target) | (MS_RDONLY if read_only else 0))


def mountpoints() -> list[str]:
    """This mount namespace's mount points, from /proc/self/mountinfo (octal escapes decoded)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        points.append(point.encode().decode("unicode_escape").encode("latin-1").decode())
    return points


def ensure(target: str, like_folder: bool) -> None:
    """A mount point for `target` (in a tmpfs or a hidden folder it may not exist yet)."""
    if like_folder:
        os.makedirs(target, exist_ok=True)
    elif not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        Path(target).touch()


def parse(argv: list[str]) -> tuple[list[tuple[str, ...]], list[str]]:
    if "--" not in argv:
        raise SystemExit(f"usage: {USAGE}")
    split = argv.index("--")
    options, command, steps, index = argv[:split], argv[split + 1:], [], 0
    while index < len(options):
        name = options[index]
        if name not in ARITY or index + ARITY[name] >= len(options):
            raise SystemExit(f"usage: {USAGE}")
        steps.append((name, *options[index + 1:index + 1 + ARITY[name]]))
        index += 1 + ARITY[name]
    if not command:
        raise SystemExit(f"usage: {USAGE}")
    return steps, command


def confine(steps: list[tuple[str, ...]]) -> None:
    """Lay out the mounts of `steps`, in order, after making everything read-only and /tmp, /dev/shm private."""
    sources = {step[1]: os.open(step[1], os.O_PATH) for step in steps if step[0] in ("--ro-bind", "--bind")}
    folders = {source: os.path.isdir(source) for source in sources}  # before a mount hides them
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    for point in mountpoints():
        if point.startswith(KERNEL_FILE_SYSTEMS) or not os.path.exists(point):  # files too (a bound /etc/hosts)
            continue
        if not os.statvfs(point).f_flag & os.ST_RDONLY:
            set_read_only(point)
    for folder in PRIVATE:
        if os.path.isdir(folder):
            mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for name, *values in steps:
        if name in ("--ro-bind", "--bind"):
            source, target = values
            ensure(target, folders[source])
            mount(f"/proc/self/fd/{sources[source]}", target, None, MS_BIND | MS_REC)
            set_read_only(target, name == "--ro-bind")
        elif name == "--tmpfs":
            ensure(values[0], like_folder=True)
            mount("tmpfs", values[0], "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
        elif name == "--chdir":
            os.chdir(values[0])
        elif name == "--setenv":
            os.environ[values[0]] = values[1]
    for descriptor in sources.values():
        os.close(descriptor)


def main(argv: list[str]) -> None:
    steps, command = parse(argv)
    setpriv = next((values[0] for name, *values in steps if name == "--setpriv"), None)
    if setpriv is None:
        raise SystemExit(f"usage: {USAGE}")
    try:
        confine([step for step in steps if step[0] != "--setpriv"])
    except OSError as error:
        print(f"optrepro.confine: {error}", file=sys.stderr)
        raise SystemExit(126) from None
    os.execv(setpriv, [setpriv, "--no-new-privs", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all",
                       "--", *command])


if __name__ == "__main__":
    main(sys.argv[1:])
