"""Bilevel speed on one device, in one process.

    python bench/bilevel_speed.py --device auto
    python bench/bilevel_speed.py --device cuda --outer 2000

* Toy: starts per second of the vectorised computation of all 1,000 starts
  (what the driver runs) against the original's loop, one start after the
  other in Python floats, for the toy baselines; and their ratio.
* Hyper-cleaning: outer iterations per second of each method with its baseline
  strategy (bilevel.md §10) on the full problem (5,000 training examples),
  timed over `--outer` iterations (RHG/T-RHG: `--rhg-outer`, each one T + K
  inner steps), data loading excluded; and the time the strategy's whole budget
  would take at that rate, beside the issue's H100 targets; on CUDA, V-PBGD and
  G-PBGD also without their CUDA graph (the same steps launched one by one) and
  the ratio. Hyper-cleaning is one run, so there is nothing to batch: the lever
  is keeping data and models on the device, with no host synchronisation
  between evaluations and one graph launch per step.

MNIST must be fetched first (`make quick` does, or
`python -m optrepro.data fetch --dataset mnist --root resources/data`).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from optrepro.device import resolve_device
from optrepro.tasks.bilevel import hyperclean, methods, toy, vectorised
from optrepro.tasks.bilevel.config import DEFAULT_TOY
from optrepro.tasks.bilevel.driver import DRIVER

REPO = Path(__file__).resolve().parent.parent
TARGETS_S = {("linear", "v_pbgd"): 15.0, ("mlp", "g_pbgd"): 30.0}  # issue 3, H100-class GPU
CASES = [("linear", "v_pbgd"), ("linear", "g_pbgd"), ("linear", "rhg"), ("linear", "t_rhg"),
         ("mlp", "v_pbgd"), ("mlp", "g_pbgd"), ("mlp", "rhg"), ("mlp", "t_rhg")]


def strategy(name: str):
    return DRIVER.load_strategy(REPO / "strategies" / "bilevel" / f"{name}.py")


def bench_toy(device: torch.device, repeats: int) -> None:
    print(f"toy ({DEFAULT_TOY.num_runs} starts, seed 42), device {device}")
    for name in ("v_pbgd", "g_pbgd"):
        toy_strategy = strategy(name).get_toy_strategy()
        vectorised.run_toy_vectorised(toy_strategy, device=device)  # warm-up
        batched = min(vectorised.run_toy_vectorised(toy_strategy, device=device).metrics["runtime_sec"]
                         for _ in range(repeats))
        one_by_one = toy.run_toy_reference(toy_strategy).metrics["runtime_sec"]
        n = DEFAULT_TOY.num_runs
        print(f"  {name:8s} vectorised {batched:7.3f} s ({n / batched:9.0f} starts/s)   "
              f"one by one {one_by_one:7.3f} s ({n / one_by_one:7.0f} starts/s)   "
              f"ratio {one_by_one / batched:6.1f}x",
              flush=True)


def bench_hyperclean(device: torch.device, data_root: Path, outer: int, rhg_outer: int) -> None:
    print(f"hyper-cleaning (5,000 train / 5,000 val / 10,000 test), device {device}")
    for net, name in CASES:
        base = strategy(name).get_hyperclean_strategy(net)
        n = rhg_outer if base.method in ("rhg", "t_rhg") else outer
        splits = hyperclean.load_hyperclean_splits(seed=42, device=device, root=data_root / "mnist")

        def rate(run) -> float:
            run(replace(base, outer_itr=2), hyperclean.make_model(net).to(device), *splits, net)  # warm-up
            result = run(replace(base, outer_itr=n), hyperclean.make_model(net).to(device), *splits, net)
            return n / result.total_runtime_sec

        graphed = rate(methods.METHOD_RUNNERS[base.method])
        target = TARGETS_S.get((net, name))
        line = (f"  {net:6s} {name:6s} {graphed:9.1f} outer it/s   full budget ({base.outer_itr:,} it) "
                f"{base.outer_itr / graphed:9.1f} s" + (f"   target <= {target:.0f} s" if target else ""))
        if device.type == "cuda" and base.method in ("v_pbgd", "g_pbgd"):  # the same steps without the CUDA graph
            eager = rate(lambda *args: methods.run_pbgd(base.method, *args, corrected=False, on_eval=None,
                                                        cuda_graph=False))
            line += f"   eager {eager:7.1f} it/s, graph replay {graphed / eager:5.1f}x"
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--data-root", type=Path, default=REPO / "resources" / "data")
    parser.add_argument("--outer", type=int, default=200, help="outer iterations timed per PBGD method")
    parser.add_argument("--rhg-outer", type=int, default=2, help="outer iterations timed per RHG method")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-hyperclean", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""))
    bench_toy(device, args.repeats)
    if not args.skip_hyperclean:
        bench_hyperclean(device, args.data_root, args.outer, args.rhg_outer)


if __name__ == "__main__":
    main()
