"""What a run pays for checking its data by content and for its sandbox, measured side by side.

    python bench/isolation_cost.py [--megabytes 170] [--repeats 5]

* Data: a dataset the size of CIFAR-10's (170 MB, in the seven files its archive extracts to) checked against
  its manifest as every run does before and after training (`hashes_now`): hashed whole (a file changed, or the
  first run after a fetch) against a cache hit (size, mtime, ctime and inode unchanged: one stat per file).
* Sandbox: the start of `python -c ''` bare, under bubblewrap, and confined (unshare + optrepro.confine +
  setpriv), as the runner starts the driver; a run pays it once, a parity or bilevel run twice (its strategy's
  process). A kind the host cannot run is printed as such.

Each figure is the least of `--repeats` (the cost without other work in the way).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from startup import least

from optrepro.data.manifest import hashes_now, manifest_path
from optrepro.files import sha256_file, write_json_atomic
from optrepro.sandbox import code_paths, confined, unavailable, unconfinable, wrap

FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]


def fake_dataset(root: Path, megabytes: int) -> None:
    """Seven files of `megabytes` in all (the last one small, as batches.meta is) and their manifest."""
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    each = megabytes * 10**6 // (len(FILES) - 1)
    for name in FILES:
        (folder / name).write_bytes(os.urandom(158 if name == "batches.meta" else each))
    files = {f"cifar-10-batches-py/{name}": sha256_file(folder / name) for name in FILES}
    write_json_atomic(manifest_path(root, "cifar10"), {"dataset": "cifar10", "archives": {}, "files": files})


def data_cost(megabytes: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory(prefix="optrepro-bench-") as folder:
        root = Path(folder)
        fake_dataset(root, megabytes)
        cache = root / "cifar10.hashed.json"

        def whole():
            cache.unlink(missing_ok=True)
            hashes_now(root, "cifar10")

        hashed = least(whole, repeats)
        cached = least(lambda: hashes_now(root, "cifar10"), repeats)
    print(f"data check, {megabytes} MB in {len(FILES)} files: hashed whole {hashed:.3f} s "
          f"({megabytes / hashed:.0f} MB/s), cache hit {1000 * cached:.2f} ms: {hashed / cached:.0f}x")


def sandbox_cost(repeats: int) -> None:
    command = [sys.executable, "-c", ""]
    with tempfile.TemporaryDirectory(prefix="optrepro-bench-") as folder:
        writable, cwd = Path(folder), Path.cwd()
        kinds = {}
        kinds["bwrap"] = (wrap(command, "bwrap", writable, code_paths(), False, cwd)[0] if not unavailable()
                          else None, unavailable())
        kinds["confined"] = (confined(command, writable, [*code_paths(), cwd], cwd, []) if not unconfinable()
                             else None, unconfinable())
        bare = least(lambda: subprocess.run(command, check=True), repeats)
        print(f"start of python -c '', bare: {1000 * bare:.0f} ms")
        for name, (wrapped, why_not) in kinds.items():
            if wrapped is None:
                print(f"start of python -c '', {name}: cannot run here ({why_not})")
                continue
            seconds = least(lambda: subprocess.run(wrapped, check=True), repeats)
            print(f"start of python -c '', {name}: {1000 * seconds:.0f} ms ({seconds / bare:.2f}x bare, "
                  f"+{1000 * (seconds - bare):.0f} ms)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=170)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data_cost(args.megabytes, args.repeats)
    sandbox_cost(args.repeats)
    print(json.dumps({"python": sys.version.split()[0], "cpus": os.cpu_count()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
