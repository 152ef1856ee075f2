"""Parity speed: the batched driver against the same runs trained one by one, on one device, in one process.

    python bench/parity_speed.py --device auto --steps 300
    python bench/parity_speed.py --device cuda --full   # + a whole mlsbench benchmark

Prints run-steps per second of both and their ratio (early stopping is off for
the comparison so both sides do the same number of steps), and the operations one
batched step dispatches (ATen operations other than views: on CUDA, about one
kernel each, which bounds a launch-bound step's time). With --full it also
times one complete benchmark process (all runs, full budget, early stopping
as specified) and prints its peak memory (GPU and host).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import resource
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from optrepro.device import resolve_device
from optrepro.tasks.parity.batched import BatchedTrainer, train_batched, train_one_by_one
from optrepro.tasks.parity.config import resolve_config
from optrepro.tasks.parity.driver import DRIVER, prepare_runs, run_benchmark

REPO = Path(__file__).resolve().parent.parent


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(function, device) -> float:
    synchronize(device)
    start = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - start


class OperationCount(TorchDispatchMode):
    """Counts the ATen operations run under it, views apart (they launch nothing)."""

    def __init__(self):
        super().__init__()
        self.operations, self.views = Counter(), 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.is_view:
            self.views += 1
        else:
            self.operations[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def operations_per_step(runs, datasets, config, device) -> OperationCount:
    trainer = BatchedTrainer(runs, datasets, config, device, torch.float32)
    trainer.load_chunk(2, 1)
    trainer.step()
    with OperationCount() as count:
        trainer.step()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--benchmark", default="n64-k8")
    parser.add_argument("--strategy", default=str(REPO / "strategies/parity/default.py"))
    parser.add_argument("--steps", type=int, default=300, help="steps per run in the side-by-side comparison")
    parser.add_argument("--max-train-examples", type=int, default=128_000,
                        help="dataset cap for the comparison (the full benchmark uses the real cap)")
    parser.add_argument("--full", action="store_true", help="also time one whole mlsbench benchmark")
    args = parser.parse_args()
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    print(f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    strategy = DRIVER.load_strategy(args.strategy)

    config = replace(resolve_config(args.benchmark, "mlsbench"), max_steps=args.steps,
                     max_train_examples=args.max_train_examples, min_steps_before_stop=10**9)
    datasets, test_sets, _, _, runs = prepare_runs(strategy, config, 42, device)
    run_steps = len(runs) * args.steps
    batched = timed(lambda: train_batched(runs, datasets, test_sets, config, device), device)
    sequential = timed(lambda: train_one_by_one(runs, datasets, test_sets, config, device), device)
    print(f"{args.benchmark} {Path(args.strategy).stem}: {len(runs)} runs x {args.steps} steps")
    print(f"  batched     {run_steps / batched:10.0f} run-steps/s  ({batched:.2f} s)")
    print(f"  one by one  {run_steps / sequential:10.0f} run-steps/s  ({sequential:.2f} s)")
    print(f"  speed-up    {sequential / batched:10.1f}x")
    count = operations_per_step(runs, datasets, config, device)
    print(f"  one batched step: {sum(count.operations.values())} operations besides {count.views} views "
          f"({', '.join(f'{name} {n}' for name, n in count.operations.most_common(6))}, ...)")

    if args.full:
        config = resolve_config(args.benchmark, "mlsbench")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with contextlib.redirect_stdout(io.StringIO()) as log:
            seconds = timed(lambda: run_benchmark(strategy, config, 42, device), device)
        final = [line for line in log.getvalue().splitlines() if line.startswith("FINAL_METRICS")]
        gpu = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
        host = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"full mlsbench {args.benchmark} {Path(args.strategy).stem} "
              f"({config.num_hidden_secrets * config.num_orderings} runs, <= {config.max_steps} steps): "
              f"{seconds:.1f} s, peak GPU memory {gpu:.2f} GiB, peak host memory {host:.2f} GiB")
        print(f"  {final[0] if final else 'no FINAL_METRICS line'}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
