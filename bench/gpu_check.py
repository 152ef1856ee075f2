"""The prepared device check: CUDA tests, then one full `mlsbench` benchmark per task, timed (bench/gpu_check.sh).

    bash bench/gpu_check.sh [--wheels DIR] --data-root resources/data --out gpu-check   # on a machine with a GPU
    bash bench/gpu_check.sh --dry-run --data-root resources/data --out /tmp/check      # same steps, tiny, CPU

Every part runs as its own process with a time limit taken from what is left of `--budget`, so one slow or
broken part costs its own line, not the check: its status is `ok`, `failed` (exit status and the last line of
its output), `timed out` or `skipped` (no budget left). `--dry-run` checks that every part runs and reports, not
how fast: it has no overall budget, and each part's limit is only a safety net (DRY_RUN_LIMIT_S), so a slow or
busy machine passes it too. Full benchmarks run the real driver as a workflow job
does (`python -m optrepro.tasks.<task>`, start-up included); beside them the naive paths where they are
affordable (the parity runs one by one, the per-example DP-SGD loop, the original's toy loop), through the
side-by-side benches. CIFAR-10 cannot be fetched without network, so its benchmark trains on random images of
CIFAR-10's shape and size: its time is the real one, its accuracy means nothing. Prints one table and writes
`<out>/gpu_check.json` after every part.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import startup

from optrepro.data.manifest import DATA_ROOT_ENV

REPO = Path(__file__).resolve().parent.parent
STRATEGIES = REPO / "strategies"
# (name, issue's H100 target in seconds or None, limit in seconds, command after the python executable,
#  dry-run extra arguments); {device} is filled in.
FULL = [
    ("parity n64-k8 default", 15, 90,
     ["-m", "optrepro.tasks.parity", "--benchmark", "n64-k8", "--strategy", "parity/default.py"],
     ["max_steps=60", "num_hidden_secrets=1", "num_orderings=2", "test_set_size=256", "max_train_examples=5000"]),
    ("dpsgd mnist standard_dpsgd", 10, 90,
     ["-m", "optrepro.tasks.dpsgd", "--benchmark", "mnist", "--strategy", "dpsgd/standard_dpsgd.py"],
     ["epochs=1", "max_train_examples=512", "max_test_examples=256"]),
    ("dpsgd cifar10 standard_dpsgd (random images)", 60, 150,
     [str(Path(__file__)), "synthetic-dpsgd", "--benchmark", "cifar10", "--strategy", "dpsgd/standard_dpsgd.py"],
     ["epochs=1", "max_train_examples=512", "max_test_examples=256"]),
    ("bilevel hyperclean-linear v_pbgd", 15, 90,
     ["-m", "optrepro.tasks.bilevel", "--benchmark", "hyperclean-linear", "--strategy", "bilevel/v_pbgd.py"],
     ["max_outer_itr=3"]),
    ("bilevel hyperclean-mlp v_pbgd", 30, 150,
     ["-m", "optrepro.tasks.bilevel", "--benchmark", "hyperclean-mlp", "--strategy", "bilevel/v_pbgd.py"],
     ["max_outer_itr=3"]),
    ("bilevel toy-convergence v_pbgd", 0.5, 30,
     ["-m", "optrepro.tasks.bilevel", "--benchmark", "toy-convergence", "--strategy", "bilevel/v_pbgd.py"], []),
]
# Several small jobs on one device: the same DP-SGD MNIST epoch, JOBS at once and then one after another.
SHARED_JOBS = 4
# A dry run's limit of every part: a safety net against a hang, far above what any part takes on a slow machine.
DRY_RUN_LIMIT_S = 1800
SHARED_NAME = f"{SHARED_JOBS} small jobs at once vs one after another"
SHARED = ["-m", "optrepro.tasks.dpsgd", "--benchmark", "mnist", "--strategy", "dpsgd/standard_dpsgd.py",
          "--set", "epochs=1"]
# A slice of the leaderboard through the real workflow, grouped jobs sharing the device: every shipped strategy x
# the original's three seeds of one benchmark per task under `mlsbench` (a dry run: each task's first strategy,
# tiny budgets); (task, benchmark, dry-run overrides).
SLICE_NAME = "leaderboard slice through the workflow (grouped jobs)"
SLICE = [("parity", "n32-k8", {"max_steps": 20, "num_hidden_secrets": 1, "num_orderings": 2, "test_set_size": 256,
                               "max_train_examples": 5000}),
         ("bilevel", "hyperclean-linear", {"max_outer_itr": 3}),
         ("dpsgd", "mnist", {"epochs": 1, "max_train_examples": 512, "max_test_examples": 256})]
SLICE_SEEDS = [42, 123, 456]
# Side by side with the naive path, in one process on one device: (name, limit, arguments, dry-run arguments).
SIDE_BY_SIDE = [
    ("parity batched vs one by one", 60, ["bench/parity_speed.py", "--steps", "300"],
     ["--steps", "5", "--max-train-examples", "5000"]),
    ("dpsgd mnist vectorised vs loop", 60, ["bench/dpsgd_speed.py", "--benchmark", "mnist", "--steps", "20"],
     ["--steps", "2"]),
    ("dpsgd cifar10 vectorised vs loop", 60, ["bench/dpsgd_speed.py", "--benchmark", "cifar10", "--steps", "10"],
     ["--steps", "1"]),
    ("bilevel toy vectorised vs original loop", 60, ["bench/bilevel_speed.py", "--skip-hyperclean"],
     ["--repeats", "1"]),
]


def run_part(name: str, command: list[str], limit: float, env: dict[str, str]) -> dict[str, object]:
    """Run one part; its wall time, status and output (the last 40 lines kept)."""
    start = time.perf_counter()
    if limit < 1:
        return {"name": name, "command": command, "status": "skipped", "seconds": 0.0,
                "detail": "no time left in the budget", "output": []}
    try:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=limit)
        output = (done.stdout + done.stderr).splitlines()
        status = "ok" if done.returncode == 0 else "failed"
        detail = "" if status == "ok" else f"exit status {done.returncode}: {output[-1] if output else ''}"
    except subprocess.TimeoutExpired as exc:
        output = [part.decode(errors="replace") if isinstance(part, bytes) else part or ""
                  for part in (exc.stdout, exc.stderr)]
        output = "".join(output).splitlines()
        status, detail = "timed out", f"stopped after {limit:.0f} s"
    return {"name": name, "command": command, "status": status, "seconds": round(time.perf_counter() - start, 2),
            "detail": detail, "output": output[-40:]}


def run_shared(command: list[str], limit: float, env: dict[str, str]) -> dict[str, object]:
    """SHARED_JOBS copies of `command` at once, then the same one after another: wall time of each way."""
    name = SHARED_NAME
    start = time.perf_counter()
    processes = [subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True) for _ in range(SHARED_JOBS)]
    try:
        codes = [process.wait(timeout=max(1.0, limit - (time.perf_counter() - start))) for process in processes]
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
        return {"name": name, "command": command, "status": "timed out", "seconds": round(limit, 2),
                "detail": f"the {SHARED_JOBS} jobs at once took over {limit:.0f} s", "output": []}
    together = time.perf_counter() - start
    one = run_part(name, command, limit - together, env)
    if one["status"] != "ok" or any(codes):
        errors = [process.stderr.read().strip().splitlines()[-1:] for process in processes]
        return {**one, "status": "failed", "detail": f"exit statuses {codes}: {errors} / {one['detail']}"}
    alone = one["seconds"] * SHARED_JOBS  # one job timed, times the number of jobs
    return {**one, "seconds": round(together + one["seconds"], 2),
            "result": f"at once {together:.1f} s, one after another {alone:.1f} s (one job {one['seconds']:.1f} s "
                      f"x {SHARED_JOBS}): {alone / together:.1f}x"}


def slice_config(device: str, dry_run: bool, data_root: str) -> dict[str, object]:
    tasks = {task: {"benchmarks": [benchmark], "protocols": ["mlsbench"],
                    "strategies": sorted(p.stem for p in (STRATEGIES / task).glob("*.py")
                                         if not p.name.startswith("_"))[:1 if dry_run else None],
                    **({"overrides": tiny} if dry_run else {})}
             for task, benchmark, tiny in SLICE}
    return {"scale": "slice-tiny" if dry_run else "full", "device": device, "seeds": SLICE_SEEDS,
            "strategy_dir": str(STRATEGIES), "data": {"root": data_root}, "tasks": tasks}


def run_slice(config: dict[str, object], folder: Path, limit: float, env: dict[str, str]) -> dict[str, object]:
    """The slice's training jobs through Snakemake (every core, the default profile's GPU sharing); its wall time
    and, from the records, how many runs ended ok and the mean seconds of a run per task."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(json.dumps(config))
    rules = [f"train_{task}" for task in config["tasks"]]
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile"), "--directory",
               str(folder), "--configfile", str(folder / "config.yaml"), "--workflow-profile",
               str(REPO / "profiles" / "default"), "--forceall", "--until", *rules]
    part = run_part(SLICE_NAME, command, limit, env)
    records = [json.loads(path.read_text()) for path in (folder / "results" / "runs").rglob("record.json")]
    per_task = {}
    for task in config["tasks"]:
        walls = [r["wall_seconds"] for r in records if r["task"] == task and r["status"] == "ok"]
        per_task[task] = f"{sum(walls) / len(walls):.1f} s/run" if walls else "no run ok"
    ok = sum(r["status"] == "ok" for r in records)
    result = (f"{ok} of {len(records)} runs ok in {part['seconds']:.1f} s "
              f"({3600 * len(records) / max(part['seconds'], 1e-9):.0f} runs/h); "
              + ", ".join(f"{task} {value}" for task, value in per_task.items()))
    if part["status"] == "ok" and ok < len(records):
        part = {**part, "status": "failed", "detail": "runs failed"}
    return {**part, "result": result}


def final_metrics(output: list[str]) -> dict[str, str]:
    """The fields of the last FINAL_METRICS line of a driver's output."""
    lines = [line for line in output if line.startswith("FINAL_METRICS")]
    return dict(re.findall(r"(\w+)=(\S+)", lines[-1])) if lines else {}


def test_counts(output: list[str]) -> str:
    """pytest's summary counts ("15 passed, 1 skipped"), or the last line."""
    for line in reversed(output):
        found = re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", line)
        if found:
            return ", ".join(f"{n} {word}" for n, word in found)
    return output[-1] if output else ""


def environment(device: str) -> dict[str, object]:
    import torch

    info = {"torch": torch.__version__, "python": platform.python_version(), "device": device,
            "host_cpus": os.cpu_count()}
    if device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        info.update(gpu=properties.name, gpu_memory_gib=round(properties.total_memory / 2**30, 1),
                    cuda=torch.version.cuda)
    return info


def table(report: dict[str, object]) -> str:
    rows = [("part", "seconds", "target s", "status", "result")]
    for part in report["parts"]:
        target = part.get("target_s")
        rows.append((part["name"], f"{part['seconds']:.1f}", "" if target is None else f"{target:g}",
                     part["status"], part.get("result") or part["detail"]))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4]
                     for row in rows)


def check(args: argparse.Namespace) -> int:
    device = "cpu" if args.dry_run else "cuda"
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data_root = str(Path(args.data_root).resolve())  # for the drivers, and for the tests' data_root fixture
    env = {**os.environ, "PYTHONUNBUFFERED": "1", DATA_ROOT_ENV: data_root, "OPTREPRO_DATA_ROOT": data_root}
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "dry_run": args.dry_run,
              "command": " ".join(sys.argv), "environment": environment(device), "parts": []}
    deadline = time.monotonic() + args.budget
    python = sys.executable

    def record(part: dict[str, object]) -> None:
        report["parts"].append(part)
        print(f"[{part['seconds']:7.1f} s] {part['name']}: {part['status']} {part.get('result') or part['detail']}",
              flush=True)
        (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")

    def left(limit: float) -> float:
        """A part's time limit: its own within what is left of the budget; a dry run's safety net."""
        return DRY_RUN_LIMIT_S if args.dry_run else min(limit, deadline - time.monotonic())

    def chosen(name: str) -> bool:
        return not args.parts or any(word.lower() in name.lower() for word in args.parts.split(","))

    tests = [python, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "--durations=8",
             "tests/test_cuda.py", *(["-k", args.pytest_k] if args.pytest_k else [])]
    parts = [("CUDA tests (pytest -m cuda)", None, args.test_limit, tests, test_counts)]
    for name, target, limit, command, tiny in FULL:
        command = [python, *command[:-1], str(STRATEGIES / command[-1]), "--seed", "42", "--protocol", "mlsbench",
                   "--device", device, *[item for field in (tiny if args.dry_run else []) for item in ("--set", field)]]
        parts.append((name, target, limit, command, lambda output: " ".join(
            f"{k}={v}" for k, v in final_metrics(output).items() if k in RESULT_KEYS)))
    parts.append(("fixed cost of a job (bench/startup.py)", None, 90, [
        python, "bench/startup.py", "--device", device, "--repeats", "1", "--gpu-check",
        str(out / "gpu_check.json")], lambda output: " | ".join(line.strip()
                                                                for line in output[-len(startup.DRIVERS):])))
    for name, limit, command, tiny in SIDE_BY_SIDE:
        parts.append((name, None, limit, [python, *command, "--device", device, *(tiny if args.dry_run else [])],
                      lambda output: " | ".join(line.strip() for line in output if SPEED_LINE.search(line))))
    for name, target, limit, command, result in parts:
        if chosen(name):
            part = run_part(name, command, left(limit), env)
            record({**part, "target_s": target, "result": result(part["output"])})
    shared = [python, *SHARED[:5], str(STRATEGIES / SHARED[5]), *SHARED[6:], "--device", device,
              *(["--set", "max_train_examples=2048", "--set", "max_test_examples=256"] if args.dry_run else [])]
    if chosen(SHARED_NAME):
        record(run_shared(shared, left(120), env))
    if chosen(SLICE_NAME):
        record(run_slice(slice_config(device, args.dry_run, data_root), out / "slice", left(300), env))
    print()
    print(table(report))
    print(f"\nwritten: {out / 'gpu_check.json'}")
    return 0 if all(part["status"] == "ok" for part in report["parts"]) else 1


RESULT_KEYS = {"score", "test_accuracy", "mean_steps", "best_accuracy", "convergence_steps", "total_runtime_sec",
               "runtime_sec", "epsilon"}
SPEED_LINE = re.compile(r"speed-up|ratio|batched |one by one  |vectorised ")


def synthetic_dpsgd(args: argparse.Namespace) -> int:
    """One DP-SGD benchmark on random images of the dataset's shape and size (timing where it cannot be fetched)."""
    import torch

    from optrepro.device import resolve_device
    from optrepro.tasks.dpsgd.config import TRAIN_SIZES, parse_overrides, resolve_config
    from optrepro.tasks.dpsgd.driver import DRIVER, run_benchmark

    config = resolve_config(args.benchmark, args.protocol, parse_overrides(args.overrides))
    device = resolve_device(args.device)
    shape = (3, 32, 32) if config.dataset == "cifar10" else (1, 28, 28)
    n_train = min(TRAIN_SIZES[config.dataset], config.max_train_examples or TRAIN_SIZES[config.dataset])
    n_test = config.max_test_examples or 10_000
    generator = torch.Generator().manual_seed(args.seed)
    data = tuple(t.to(device) for t in (torch.randn(n_train, *shape, generator=generator),
                                        torch.randint(0, 10, (n_train,), generator=generator),
                                        torch.randn(n_test, *shape, generator=generator),
                                        torch.randint(0, 10, (n_test,), generator=generator)))
    with DRIVER.host(args.strategy, device) as strategy:  # the mechanism in its own process, as in a run
        run_benchmark(strategy, config, args.seed, data)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    synthetic = sub.add_parser("synthetic-dpsgd", help="one DP-SGD benchmark on random images")
    synthetic.add_argument("--benchmark", default="cifar10")
    synthetic.add_argument("--strategy", required=True)
    synthetic.add_argument("--seed", type=int, default=42)
    synthetic.add_argument("--protocol", default="mlsbench")
    synthetic.add_argument("--device", default="cuda")
    synthetic.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--dry-run", action="store_true", help="same steps at tiny sizes on the CPU")
    parser.add_argument("--data-root", default=str(REPO / "resources" / "data"), help="a DATA_ROOT holding MNIST")
    parser.add_argument("--out", default="gpu-check", help="folder for gpu_check.json")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds for the whole check")
    parser.add_argument("--test-limit", type=float, default=200.0, help="seconds for the CUDA tests")
    parser.add_argument("--parts", help="run only the parts whose names hold one of these comma-separated words")
    parser.add_argument("--pytest-k", help="pytest -k expression choosing among the CUDA tests")
    args = parser.parse_args()
    return synthetic_dpsgd(args) if args.command == "synthetic-dpsgd" else check(args)


if __name__ == "__main__":
    sys.exit(main())
