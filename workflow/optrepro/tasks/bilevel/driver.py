"""The bilevel driver: `python -m optrepro.tasks.bilevel --benchmark toy-convergence --strategy FILE --seed 42`.

One process runs one benchmark command and prints the original's lines. The
strategy file is the original's editable region: it defines
`get_toy_strategy()` and `get_hyperclean_strategy(net)`, executed among the
original module's names. Each strategy function is called once, then the
object's `validate()`, before any seeding. The toy runs the original's own
loop under `mlsbench` (its numbers bit for bit) and all starts at once
under `corrected` (`vectorised.py`); hyper-cleaning runs one of `methods.py`. The command line
and its errors are the shared skeleton's (`optrepro.tasks.cli`).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import IO

import torch

from ...metrics import emit
from ...strategy import StrategyError, call_strategy
from .. import cli
from .config import (
    DEFAULT_HYPERCLEAN,
    DEFAULT_TOY,
    HYPERCLEAN_METHODS,
    NETS,
    PROTOCOLS,
    BenchmarkConfig,
    HypercleanConfig,
    HypercleanEval,
    HypercleanStrategy,
    ToyProblemConfig,
    ToyStrategy,
    capped_strategy,
)
from .core import NAMES
from .hyperclean import corrected_extras, load_hyperclean_splits, make_model, summarize_hyperclean_metrics
from .methods import METHOD_RUNNERS, run_g_pbgd, run_rhg_family, run_v_pbgd
from .toy import ToyDivergedError, ToyRun, run_toy_reference, toy_metrics
from .vectorised import run_toy_vectorised

# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def emit_toy_run(run: ToyRun, stream: IO[str] | None = None) -> str:
    """`TRAIN_METRICS run=… step=… objective=… residual=… projected_grad=… success=…` (6 dp)."""
    return emit("TRAIN_METRICS", {"run": run.run, "step": run.steps, "objective": run.objective,
                                  "residual": run.residual, "projected_grad": run.projected_grad,
                                  "success": int(run.success)}, stream=stream)


def emit_toy_final(metrics: dict[str, float], stream: IO[str] | None = None) -> str:
    """`FINAL_METRICS convergence_steps=… … score=…`, every value with 6 dp, in the original's order."""
    return emit("FINAL_METRICS", {key: float(value) for key, value in metrics.items()}, stream=stream)


def emit_hyperclean_eval(record: HypercleanEval, aux_name: str, iter_time: float,
                         stream: IO[str] | None = None) -> str:
    return emit("TRAIN_METRICS", {
        "step": int(record.step), "train_loss": record.train_loss, "val_loss": record.val_loss,
        "test_accuracy": record.test_accuracy, "f1_score": record.f1_score,
        "cleaner_precision": record.cleaner_precision, "cleaner_recall": record.cleaner_recall,
        aux_name: record.aux_value, "iter_time": float(iter_time),
    }, decimals={"test_accuracy": 3, "f1_score": 3}, stream=stream)


def emit_hyperclean_final(metrics: dict[str, float], stream: IO[str] | None = None) -> str:
    return emit("FINAL_METRICS", {key: float(value) for key, value in metrics.items()}, stream=stream)


# ---------------------------------------------------------------------------
# One benchmark
# ---------------------------------------------------------------------------


def run_toy(strategy: ToyStrategy, config: ToyProblemConfig = DEFAULT_TOY, seed: int = 42,
            exact_gradient: bool = False, device: str | torch.device = "cpu", vectorised: bool = True,
            stream: IO[str] | None = None) -> dict[str, float]:
    """Run the toy benchmark and print its lines as the original does; return the final metrics.

    By default all starts at once on `device` (`run_toy_vectorised`); `vectorised=False` runs the original's
    own Python-float loop (what `mlsbench` runs: the original's numbers bit for bit), from which the vectorised
    computation differs only at ill-conditioned starts (see vectorised.py).

    `runtime_sec` covers computing and printing the per-run lines, as in the original. Raises
    `ToyDivergedError` (after printing the lines of the runs before it) where the original crashes.
    """
    start_time = time.perf_counter()
    if vectorised:
        result = run_toy_vectorised(strategy, config, seed, exact_gradient, device)
        for run in result.runs:
            emit_toy_run(run, stream)
    else:
        result = run_toy_reference(strategy, config, seed, exact_gradient,
                                   on_run=lambda run: emit_toy_run(run, stream))
    if result.failure is not None:
        raise ToyDivergedError(result.failure)
    metrics = toy_metrics(result.runs, time.perf_counter() - start_time)
    emit_toy_final(metrics, stream)
    return metrics


def run_hyperclean(strategy: HypercleanStrategy, net: str = "linear", seed: int = 42,
                   config: HypercleanConfig = DEFAULT_HYPERCLEAN, device: str | torch.device = "cpu",
                   protocol: str = "mlsbench", outer_itr: int | None = None, root: str | Path | None = None,
                   splits=None, stream: IO[str] | None = None) -> dict[str, float]:
    """One hyper-cleaning run: validate, load data (seeding), build the model, run the method, print.

    `outer_itr` overrides the strategy's budget (quick scale); `root` the MNIST folder; `splits` (train, val,
    test) skips loading but then the caller must have seeded (`set_global_seed`) as `load_hyperclean_splits`
    does. Returns the FINAL_METRICS (the original's 20 keys, then under `corrected` the CORRECTED_KEYS).
    """
    strategy.validate()
    if outer_itr is not None:
        strategy = replace(strategy, outer_itr=int(outer_itr))
        strategy.validate()
    if net not in NETS:
        raise ValueError(f"Unsupported net: {net}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unsupported protocol: {protocol}; expected one of {', '.join(PROTOCOLS)}")
    assert strategy.method in HYPERCLEAN_METHODS
    device = torch.device(device)
    if splits is None:
        splits = load_hyperclean_splits(config, seed, device, root)
    train, val, test = splits
    # Created after the data, on CPU from the global generator, then moved. [UNCERTAIN for RHG, which
    # builds its own model every outer step: whether the original builds this one first is not recorded.]
    model = make_model(net).to(device)
    corrected = protocol == "corrected"
    result = METHOD_RUNNERS[strategy.method](
        strategy, model, train, val, test, net, corrected=corrected,
        on_eval=lambda record, aux_name, iter_time: emit_hyperclean_eval(record, aux_name, iter_time, stream))
    metrics = summarize_hyperclean_metrics(result.best_accuracy, result.best_f1, result.total_runtime_sec)
    if corrected:
        metrics.update(corrected_extras(result.iterate_records))
    emit_hyperclean_final(metrics, stream)
    return metrics


def strategy_object(strategy, name: str, *args):
    """Call a strategy function once and validate what it returned, as the original does."""
    expected = ToyStrategy if name == "get_toy_strategy" else HypercleanStrategy
    value = call_strategy(strategy.path, name, getattr(strategy, name), *args)
    if not isinstance(value, expected):
        raise StrategyError(strategy.path, f"{name} returned {type(value).__name__}, expected {expected.__name__}")
    try:
        value.validate()
    except ValueError as exc:
        raise StrategyError(strategy.path, f"{name} returned an invalid strategy: {exc}") from None
    return value


def run_benchmark(strategy, config: BenchmarkConfig, seed: int, device: torch.device) -> dict[str, float]:
    """Print the benchmark's lines; return its FINAL_METRICS."""
    if config.mode == "toy":
        toy_strategy = strategy_object(strategy, "get_toy_strategy")
        return run_toy(toy_strategy, config.problem, seed, config.exact_gradient, device,
                       vectorised=not config.original_loop)
    hc_strategy = capped_strategy(strategy_object(strategy, "get_hyperclean_strategy", config.net), config.caps)
    return run_hyperclean(hc_strategy, config.net, seed, config.problem, device, config.protocol)


def strategy_namespace() -> dict[str, object]:
    """The original module's names (core.NAMES) and its entry points."""
    return {**NAMES, "run_toy": run_toy, "run_hyperclean": run_hyperclean, "run_v_pbgd": run_v_pbgd,
            "run_g_pbgd": run_g_pbgd, "run_rhg_family": run_rhg_family, "parse_args": parse_args, "main": main}


DRIVER = cli.Driver("bilevel", strategy_namespace, run_benchmark,
                    summary_file="{label}_metrics.json", separate_process=True,
                    accepted_results=(ToyStrategy, HypercleanStrategy))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return cli.parse_args(DRIVER, argv)


def main(argv: list[str] | None = None) -> int:
    return cli.main(DRIVER, argv)
