"""The bilevel toy problem as the original ran it: its scalar functions, its loop, its metrics.

The original's scalar functions, in its formulas and order: `toy_f`, `toy_df` (the original's *defective*
x-derivative), `toy_df_exact` (the correct one, used by `corrected`), `toy_g`, `toy_dg`,
`toy_gpbgd_penalty_grad`, `toy_penalized_gradient`, `project_x`; and `run_toy_reference`, the original's loop,
one start after the other in Python floats, including its `gams` semantics (only the first penalty is used; a
failure counts len(gams) x max_steps_per_gamma steps). The fast path is `vectorised.py`.

Where the original crashes: Python's float arithmetic raises where torch's returns inf. When an iterate
diverges, `(x + y) ** 2` in `toy_g` raises OverflowError or `math.cos(4y + 2)` in `toy_f` raises ValueError,
and the original stops in the middle of its loop over starts. Both paths return the first start (in run order)
at which it happens as `ToyResult.failure`, with the runs before it; the driver prints their lines and then
raises `ToyDivergedError`.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Callable

from .config import DEFAULT_TOY, ToyProblemConfig, ToyStrategy


def toy_f(x: float, y: float) -> float:
    return math.cos(4.0 * y + 2.0) / (1.0 + math.exp(2.0 - 4.0 * x)) + 0.5 * math.log((4.0 * x - 2.0) ** 2 + 1.0)


def toy_df(x: float, y: float) -> tuple[float, float]:
    """The original's gradient of f: its x-component squares only the exponential in the denominator."""
    exp_term = math.exp(2.0 - 4.0 * x)
    return (
        4.0 * exp_term * math.cos(4.0 * y + 2.0) / (1.0 + exp_term ** 2)
        + (16.0 * x - 8.0) / ((4.0 * x - 2.0) ** 2 + 1.0),
        -4.0 * math.sin(4.0 * y + 2.0) / (1.0 + exp_term),
    )


def toy_df_exact(x: float, y: float) -> tuple[float, float]:
    """The correct gradient of f (the `corrected` protocol): (1 + e^{2-4x})² in the x-component's denominator."""
    exp_term = math.exp(2.0 - 4.0 * x)
    return (
        4.0 * exp_term * math.cos(4.0 * y + 2.0) / (1.0 + exp_term) ** 2
        + (16.0 * x - 8.0) / ((4.0 * x - 2.0) ** 2 + 1.0),
        -4.0 * math.sin(4.0 * y + 2.0) / (1.0 + exp_term),
    )


def toy_g(x: float, y: float) -> float:
    return (x + y) ** 2 + x * math.sin(x + y) ** 2


def toy_dg(x: float, y: float) -> tuple[float, float]:
    sin_term = math.sin(x + y)
    cos_term = math.cos(x + y)
    return (
        2.0 * (x + y + 0.5 * sin_term ** 2 + x * sin_term * cos_term),
        2.0 * (x + y + x * sin_term * cos_term),
    )


def toy_gpbgd_penalty_grad(x: float, y: float) -> tuple[float, float]:
    """Gradient of p = ½(∂g/∂y)², the G-PBGD penalty (a driver addition)."""
    sin_term = math.sin(x + y)
    cos_term = math.cos(x + y)
    gy = 2.0 * (x + y + x * sin_term * cos_term)
    dgy_dx = 2.0 * (1.0 + sin_term * cos_term + x * (cos_term ** 2 - sin_term ** 2))
    dgy_dy = 2.0 * (1.0 + x * (cos_term ** 2 - sin_term ** 2))
    return gy * dgy_dx, gy * dgy_dy


def toy_penalized_gradient(x: float, y: float, method: str, gamma: float,
                           exact_gradient: bool = False) -> tuple[float, float, float, float]:
    """(f, g, ∇̃f_x + γ h_x, ∇̃f_y + γ h_y); `exact_gradient` (an optrepro addition) uses `toy_df_exact`."""
    upper = toy_f(x, y)
    lower = toy_g(x, y)
    grad_fx, grad_fy = toy_df_exact(x, y) if exact_gradient else toy_df(x, y)
    if method == "v_pbgd":
        grad_gx, grad_gy = toy_dg(x, y)
    elif method == "g_pbgd":
        grad_gx, grad_gy = toy_gpbgd_penalty_grad(x, y)
    else:
        raise ValueError(f"Unsupported toy method: {method}")
    return upper, lower, grad_fx + gamma * grad_gx, grad_fy + gamma * grad_gy


def project_x(x: float, config: ToyProblemConfig = DEFAULT_TOY) -> float:
    return min(max(x, config.x_lower), config.x_upper)


def toy_starting_points(config: ToyProblemConfig, seed: int) -> list[tuple[float, float]]:
    """(x0, y0) of every run: x0 then y0 drawn uniformly from one `random.Random(seed)`, run after run."""
    rng = random.Random(seed)
    points = []
    for _ in range(config.num_runs):
        x = rng.uniform(config.init_x_lower, config.init_x_upper)
        y = rng.uniform(config.init_y_lower, config.init_y_upper)
        points.append((x, y))
    return points


# ---------------------------------------------------------------------------
# Toy: results and metrics
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ToyRun:
    """One start's outcome: what its TRAIN_METRICS line prints."""

    run: int
    steps: int  # iterations taken on success; len(gams) * max_steps_per_gamma on failure
    objective: float  # f at the point before the last move (NaN if no iteration ran)
    residual: float  # |x + y| after the last move (inf if no iteration ran)
    projected_grad: float  # ‖((x - x⁺)/α, (y - y⁺)/α)‖ of the last move (inf if no iteration ran)
    success: bool


@dataclass(frozen=True)
class ToyFailure:
    """The first start at which the original raises (its iterate diverged) and what it raises."""

    run: int
    step: int  # iterations completed before the evaluation that raised
    error: str  # exception class name, e.g. "OverflowError"
    message: str  # str() of the exception


class ToyDivergedError(ArithmeticError):
    """Raised where the original driver crashes with a floating-point exception (see the module docstring)."""

    def __init__(self, failure: ToyFailure):
        self.failure = failure
        super().__init__(f"toy run {failure.run} diverged after {failure.step} steps: the original driver raises "
                         f"{failure.error}: {failure.message}")


@dataclass(frozen=True)
class ToyResult:
    runs: list[ToyRun]  # in run order; only the runs before `failure.run` when there is a failure
    metrics: dict[str, float] | None  # None when there is a failure
    failure: ToyFailure | None = None


def _plain_sum(values) -> float:
    """Left-to-right float addition, as `sum` did on Python 3.10 (3.12's `sum` compensates)."""
    total = 0.0
    for value in values:
        total += value
    return total


def toy_metrics(runs: list[ToyRun], runtime_sec: float) -> dict[str, float]:
    """The toy's FINAL_METRICS, in printing order."""
    steps = [run.steps for run in runs]
    n = len(steps)
    successes = sum(int(run.success) for run in runs)
    return {
        "convergence_steps": float(sum(steps) / n),
        "median_steps": float(sorted(steps)[n // 2]),
        "final_residual": float(_plain_sum(run.residual for run in runs) / n),
        "final_projected_grad": float(_plain_sum(run.projected_grad for run in runs) / n),
        "success_rate": float(successes / n),
        "runtime_sec": float(runtime_sec),
        "score": float(sum(steps) / n),
    }


# ---------------------------------------------------------------------------
# Toy: the original's loop
# ---------------------------------------------------------------------------


def run_toy_start(x: float, y: float, strategy: ToyStrategy, config: ToyProblemConfig = DEFAULT_TOY,
                  exact_gradient: bool = False, run: int = 0) -> ToyRun:
    """One start of the original's loop from (x, y), in Python floats.

    Raises `ToyDivergedError` where the original raises (its exception's name and message in the failure).
    """
    total_steps = 0
    upper_value = float("nan")
    residual = float("inf")
    projected_grad = float("inf")
    success = False
    try:
        for gamma in strategy.gams:
            alpha = strategy.alpha0 / gamma
            for _ in range(config.max_steps_per_gamma):
                upper_value, _, grad_x, grad_y = toy_penalized_gradient(x, y, strategy.method, gamma, exact_gradient)
                x_next = project_x(x - alpha * grad_x, config)
                y_next = y - alpha * grad_y
                projected_grad = math.hypot((x - x_next) / alpha, (y - y_next) / alpha)
                residual = abs(x_next + y_next)
                x, y = x_next, y_next
                total_steps += 1
                if projected_grad <= config.stationarity_tol:
                    success = True
                    break
            # Whatever happened, the first penalty value ends the run.
            if not success:
                total_steps = len(strategy.gams) * config.max_steps_per_gamma
                break
            if success:
                break
    except (ArithmeticError, ValueError) as error:  # where the original crashes
        raise ToyDivergedError(ToyFailure(run, total_steps, type(error).__name__, str(error))) from error
    return ToyRun(run, total_steps, upper_value, residual, projected_grad, success)


def run_toy_reference(strategy: ToyStrategy, config: ToyProblemConfig = DEFAULT_TOY, seed: int = 42,
                      exact_gradient: bool = False,
                      on_run: Callable[[ToyRun], None] | None = None) -> ToyResult:
    """One start after another in Python floats, exactly as the original's `run_toy`.

    `on_run` is called after each run (the original prints its line there);
    `runtime_sec` covers the whole loop, callbacks included, as the original's.
    At the first start that diverges (where the original crashes) the loop stops.
    """
    strategy.validate()
    config.validate()
    rng = random.Random(seed)
    start_time = time.perf_counter()
    runs: list[ToyRun] = []
    failure = None
    for run_idx in range(config.num_runs):
        x = rng.uniform(config.init_x_lower, config.init_x_upper)
        y = rng.uniform(config.init_y_lower, config.init_y_upper)
        try:
            result = run_toy_start(x, y, strategy, config, exact_gradient, run_idx)
        except ToyDivergedError as error:
            failure = error.failure
            break
        runs.append(result)
        if on_run is not None:
            on_run(result)
    runtime = time.perf_counter() - start_time
    return ToyResult(runs, None if failure else toy_metrics(runs, runtime), failure)
