"""The bilevel driver: `python -m optrepro.tasks.bilevel --benchmark toy-convergence --strategy FILE --seed 42`.

One process runs one benchmark command of bilevel.md §4.2 and prints the
original's lines (§9.1-§9.3). The strategy file is the original's editable
region: it defines `get_toy_strategy()` and `get_hyperclean_strategy(net)`,
executed among the original module's names. Each strategy function is called
once, then the object's `validate()`, before any seeding (§2.1). Bad input
(a broken strategy, an invalid strategy object, a bad override, missing data)
ends the process with one `ERROR:` line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...strategy import StrategyError, call_strategy, load_strategy
from ..device import resolve_device
from . import hyperclean, toy
from .benchmarks import BENCHMARKS, PROTOCOLS, capped_strategy, configured, parse_overrides
from .config import DEFAULT_TOY, ToyProblemConfig, ToyStrategy
from .hyperclean_config import DEFAULT_HYPERCLEAN, HypercleanConfig, HypercleanEval, HypercleanStrategy

STRATEGY_FUNCTIONS = ("get_toy_strategy", "get_hyperclean_strategy")


def strategy_namespace() -> dict[str, object]:
    """The names the original module defined or imported above its editable region (§2, §3.6).

    The original's `hypergrad` helper package (`hg`) is not offered: no strategy uses it.
    """
    from torchvision import datasets

    namespace = {"argparse": argparse, "json": json, "math": math, "os": os, "random": random, "sys": sys,
                 "time": time, "asdict": asdict, "dataclass": dataclass, "Path": Path, "torch": torch, "nn": nn,
                 "F": F, "datasets": datasets,
                 "ToyProblemConfig": ToyProblemConfig, "DEFAULT_TOY": DEFAULT_TOY, "ToyStrategy": ToyStrategy,
                 "HypercleanConfig": HypercleanConfig, "DEFAULT_HYPERCLEAN": DEFAULT_HYPERCLEAN,
                 "HypercleanStrategy": HypercleanStrategy, "HypercleanEval": HypercleanEval,
                 "resolve_device": resolve_device}
    for module in (toy, hyperclean):
        namespace.update({name: getattr(module, name) for name in dir(module)
                          if not name.startswith("_") and callable(getattr(module, name))
                          and getattr(getattr(module, name), "__module__", None) == module.__name__})
    return namespace


def strategy_object(strategy, name: str, *args):
    """Call a strategy function once and validate what it returned, as the original does (§2.1)."""
    expected = ToyStrategy if name == "get_toy_strategy" else HypercleanStrategy
    value = call_strategy(strategy.path, name, getattr(strategy, name), *args)
    if not isinstance(value, expected):
        raise StrategyError(strategy.path, f"{name} returned {type(value).__name__}, expected {expected.__name__}")
    try:
        value.validate()
    except ValueError as exc:
        raise StrategyError(strategy.path, f"{name} returned an invalid strategy: {exc}") from None
    return value


def run_benchmark(strategy, benchmark: str, protocol: str, seed: int, device: torch.device,
                  overrides: dict[str, object]) -> dict[str, float]:
    """Print the benchmark's lines; return its FINAL_METRICS."""
    settings = BENCHMARKS[benchmark]
    if settings["mode"] == "toy":
        toy_strategy = strategy_object(strategy, "get_toy_strategy")
        config = configured(DEFAULT_TOY, overrides)
        return toy.run_toy(toy_strategy, config, seed, PROTOCOLS[protocol]["exact_gradient"], device)
    net = settings["net"]
    hc_strategy = capped_strategy(strategy_object(strategy, "get_hyperclean_strategy", net), overrides)
    return hyperclean.run_hyperclean(hc_strategy, net, seed, configured(DEFAULT_HYPERCLEAN, overrides), device,
                                     protocol)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m optrepro.tasks.bilevel", description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", choices=list(BENCHMARKS), default="toy-convergence")
    parser.add_argument("--strategy", required=True,
                        help="strategy file (get_toy_strategy, get_hyperclean_strategy)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--protocol", choices=list(PROTOCOLS), default="mlsbench")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="scale override (repeatable; see optrepro.tasks.bilevel.benchmarks)")
    parser.add_argument("--output-dir", type=Path, help="also write the original's JSON metrics file here")
    parser.add_argument("--label", default="eval", help="JSON file name prefix")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        overrides = parse_overrides(args.overrides)
        device = resolve_device(args.device)
        strategy = load_strategy(args.strategy, strategy_namespace(), STRATEGY_FUNCTIONS)
        metrics = run_benchmark(strategy, args.benchmark, args.protocol, args.seed, device, overrides)
    except (StrategyError, RuntimeError, ValueError, ArithmeticError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        return 2
    if args.output_dir:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        path = args.output_dir / f"{args.label}_metrics.json"
        path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return 0
