"""Wall time of `make check` (python -m optrepro.check) on every shipped strategy, one file after the other.

    python bench/check_time.py                      # every strategies/<task>/*.py
    python bench/check_time.py strategies/parity    # one task's files

One line per file: its exit status, the wall seconds of the whole check (interpreter start to exit, the
benchmarks side by side as the command runs them) and its benchmark lines; then the slowest file and how many
exceeded the issue's 60 s goal. Nothing else should run on the machine meanwhile: the figure is the machine's.
MNIST must be fetched (`make quick` does); DP-SGD's Fashion-MNIST and CIFAR-10 lines say `skipped` without them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOAL_S = 60.0


def main(folders: list[str]) -> None:
    files = sorted(path for folder in (folders or sorted((REPO / "strategies").iterdir()))
                   for path in Path(folder).resolve().glob("*.py") if not path.name.startswith("_"))
    times = {}
    for path in files:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "optrepro.check", str(path)], cwd=REPO, capture_output=True,
                              text=True)
        times[path] = time.perf_counter() - start
        lines = done.stdout.splitlines()[1:] or done.stderr.splitlines()[-1:]
        print(f"{path.relative_to(REPO)}: exit {done.returncode} in {times[path]:.1f} s", flush=True)
        for line in lines:
            print(f"    {line}", flush=True)
    slowest = max(times, key=times.get)
    print(f"{len(files)} files; slowest {slowest.relative_to(REPO)} {times[slowest]:.1f} s; "
          f"over {GOAL_S:.0f} s: {sum(t > GOAL_S for t in times.values())}")


if __name__ == "__main__":
    main(sys.argv[1:])
