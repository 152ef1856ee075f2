"""DP-SGD speed: the driver's vectorised per-example gradients against the original's per-example loop, and
the mechanism called in-process against the mechanism in its own process (as runs call it).

    python bench/dpsgd_speed.py --device auto --benchmark mnist --steps 20
    python bench/dpsgd_speed.py --device cuda --benchmark cifar10 --steps 50

Every side runs the same training step on the same device in one process (per-example gradients, the
baseline `standard_dpsgd` mechanism, the SGD update) on batches of random images shaped like the
benchmark's data, from the same initial model; printed are training examples per second of each, their
ratios, and the largest difference between the two gradient paths' per-example gradients on the first batch.
In-process and separate-process sides alternate over `--rounds` rounds; each side's best round is printed.
The separate process is the runs' own (optrepro.strategy_host, its sandbox included): the gradients cross
through its shared arena, the generator states with every call.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from optrepro.device import resolve_device
from optrepro.tasks.dpsgd.config import resolve_config
from optrepro.tasks.dpsgd.core import MODELS, compute_per_sample_gradients
from optrepro.tasks.dpsgd.driver import DRIVER, private_step
from optrepro.tasks.dpsgd.vectorised import per_sample_gradients

REPO = Path(__file__).resolve().parent.parent
SHAPES = {"mnist": (1, 28, 28), "fmnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def examples_per_second(gradients, strategy, config, device: torch.device, steps: int) -> float:
    """Train `steps` steps (after one warm-up step) with the given per-example gradient function and the
    strategy's mechanism (in this process, or in the strategy's)."""
    torch.manual_seed(0)
    model = MODELS[config.dataset]().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    mechanism = strategy.DPMechanism(max_grad_norm=config.max_grad_norm, noise_multiplier=1.0,
                                     n_params=sum(p.numel() for p in model.parameters()), dataset_size=60_000,
                                     batch_size=config.batch_size, epochs=config.epochs, target_epsilon=3.0,
                                     target_delta=1e-5)
    x = torch.randn(config.batch_size, *SHAPES[config.dataset], device=device)
    y = torch.randint(0, 10, (config.batch_size,), device=device)
    for step in range(steps + 1):
        if step == 1:
            synchronize(device)
            start = time.perf_counter()
        private_step(strategy.path, mechanism, model, optimizer, gradients(model, x, y), step, 1, 1.0)
    synchronize(device)
    return steps * config.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--benchmark", default="mnist", choices=sorted(SHAPES))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per side (the loop side is slow)")
    parser.add_argument("--rounds", type=int, default=3, help="in-process and separate process, alternated")
    parser.add_argument("--strategy", default=str(REPO / "strategies/dpsgd/standard_dpsgd.py"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    print(f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    config = resolve_config(args.benchmark, "mlsbench")
    strategy = DRIVER.load_strategy(args.strategy)

    torch.manual_seed(0)
    model = MODELS[config.dataset]().to(device)
    x = torch.randn(8, *SHAPES[config.dataset], device=device)
    y = torch.randint(0, 10, (8,), device=device)
    difference = max(float((a - b).abs().max()) for a, b in zip(per_sample_gradients(model, x, y),
                                                                   compute_per_sample_gradients(model, x, y)))
    with DRIVER.host(args.strategy, device) as host:
        rounds = [(examples_per_second(per_sample_gradients, strategy, config, device, args.steps),
                   examples_per_second(per_sample_gradients, host, config, device, args.steps))
                  for _ in range(args.rounds)]  # alternated, the best of each: a busy moment slows one round
    fast, hosted = (max(side) for side in zip(*rounds))
    slow = examples_per_second(compute_per_sample_gradients, strategy, config, device, args.steps)
    print(f"{args.benchmark} ({type(model).__name__}), batch {config.batch_size}, {args.steps} steps, "
          f"{Path(args.strategy).stem}; max |vectorised - loop| gradient difference {difference:.1e}")
    print(f"  vectorised (torch.func), mechanism in-process      {fast:10.0f} examples/s")
    print(f"  vectorised, mechanism in its own process (as runs)  {hosted:10.0f} examples/s")
    print(f"  per-example loop, mechanism in-process              {slow:10.0f} examples/s")
    print(f"  speed-up of vectorised over loop                    {fast / slow:10.1f}x")
    print(f"  cost of the mechanism's own process                 {100 * (fast / hosted - 1):+10.1f} %")


if __name__ == "__main__":
    main()
