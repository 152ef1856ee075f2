"""The fixed cost of one training job, per task, against its training time.

    python bench/startup.py --device auto [--gpu-check gpu-check/gpu_check.json]

Every job pays, before and after training: the runner's start (interpreter and imports; it imports no torch),
the driver's start up to the moment it names its device (interpreter, the task's imports, the device's
context: timed until the driver's DEVICE line on stderr), the data check against the manifest (cached by
size, mtime, ctime and inode, so after the first run of a dataset it is one stat per file) and the record's
provenance (hashing the driver's code and the strategy, git state, package versions). Each is timed here
on this machine, `--repeats` times (the least is printed: the cost without other work in the way).
Full-scale job times come from a `bench/gpu_check.sh` result of the same machine (`--gpu-check`; the check
runs this script after its benchmarks), else "not measured".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from optrepro.data.manifest import DATA_ROOT_ENV, hashes_now
from optrepro.device import DEVICE_ENV, DEVICE_LINE
from optrepro.files import sha256_file
from optrepro.provenance import driver_files, environment, git_state, sha256_tree
from optrepro.sandbox import child_env

REPO = Path(__file__).resolve().parent.parent
DRIVERS = {  # task: (a small benchmark run of the driver, the datasets it reads, its gpu_check part)
    "parity": (["--benchmark", "n32-k8", "--strategy", "strategies/parity/default.py", "--set", "max_steps=1",
                "--set", "num_hidden_secrets=1", "--set", "num_orderings=1", "--set", "test_set_size=32"],
               [], "parity n64-k8 default"),
    "bilevel": (["--benchmark", "toy-convergence", "--strategy", "strategies/bilevel/v_pbgd.py"], [],
                "bilevel hyperclean-linear v_pbgd"),
    "dpsgd": (["--benchmark", "mnist", "--strategy", "strategies/dpsgd/standard_dpsgd.py", "--set", "epochs=1",
               "--set", "max_train_examples=512", "--set", "max_test_examples=256"], ["mnist"],
              "dpsgd mnist standard_dpsgd"),
}


def least(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def python(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=child_env(**{DEVICE_ENV: "1"}), text=True,
                            bufsize=1, **kwargs)


def driver_start(task: str, arguments: list[str], device: str) -> float:
    """Seconds from the driver's launch to its DEVICE line; the driver is then left to finish."""
    start = time.perf_counter()
    process = python("-m", f"optrepro.tasks.{task}", *arguments, "--device", device, stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE)
    seconds = None
    for line in iter(process.stderr.readline, ""):
        if line.startswith(DEVICE_LINE) and seconds is None:
            seconds = time.perf_counter() - start
    if process.wait() or seconds is None:
        raise SystemExit(f"the {task} driver failed (exit status {process.returncode})")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--data-root", type=Path,
                        default=Path(os.environ.get(DATA_ROOT_ENV, REPO / "resources" / "data")))
    parser.add_argument("--gpu-check", type=Path, help="a gpu_check.json holding full-scale training times")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ[DATA_ROOT_ENV] = str(args.data_root)
    trained = {}
    if args.gpu_check:
        report = json.loads(args.gpu_check.read_text())
        trained = {part["name"]: part["seconds"] for part in report["parts"] if part["status"] == "ok"}
    runner = least(lambda: python("-c", "import optrepro.runner").wait(), args.repeats)
    print(f"{'task':8s} {'runner':>7s} {'driver':>7s} {'data':>6s} {'record':>7s} {'fixed':>7s}   full-scale job "
          f"(gpu_check, start-up included)")
    for task, (arguments, datasets, part) in DRIVERS.items():
        driver = min(driver_start(task, arguments, args.device) for _ in range(args.repeats))
        data = least(lambda: [hashes_now(args.data_root, dataset) for dataset in datasets], args.repeats)
        strategy = REPO / arguments[arguments.index("--strategy") + 1]
        record = least(lambda: (sha256_tree(driver_files(task)), sha256_file(strategy), git_state(),
                                environment()), args.repeats)
        fixed = runner + driver + data + record
        full = trained.get(part)
        share = f"{full:7.1f} s, of which fixed {100 * fixed / full:4.1f} %  ({part})" if full else "not measured"
        print(f"{task:8s} {runner:6.2f}s {driver:6.2f}s {data:5.2f}s {record:6.2f}s {fixed:6.2f}s   {share}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
