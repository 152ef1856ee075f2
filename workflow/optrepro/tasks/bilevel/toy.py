"""The toy bilevel problem (bilevel.md §5): the original's functions, its loop, and all starts at once.

* `toy_f`, `toy_df` (the original's *defective* x-derivative, §5.2),
  `toy_df_exact` (the correct one, used by the `corrected` protocol), `toy_g`,
  `toy_dg`, `toy_gpbgd_penalty_grad`, `toy_penalized_gradient`, `project_x`:
  the original's scalar functions, with its formulas in its evaluation order.
* `run_toy_reference`: the original's loop, one start after the other in
  Python floats (§5.3-§5.6), including its `gams` semantics (only the first
  penalty is used; a failure counts len(gams) x max_steps_per_gamma steps).
* `run_toy_vectorised`: the same starts as one float64 torch computation on a
  device (what the driver runs). Every start follows the same formulas in the
  same order; per-start masks freeze the recorded values of starts that have
  stopped, and the host looks at the device only every `sync_every` steps.
  `toy_outcome_one_by_one` is the plain one-start-at-a-time loop in Python
  floats with torch's elementary functions (`SCALAR_TORCH_OPS`); the
  vectorised computation equals it bit for bit on every start (tested).
* `toy_metrics`, `toy_result`, `emit_toy_result`, `run_toy`: the §5.6 metrics
  and the §9.1 lines, printed through `optrepro.metrics`.

How equal to the original. Torch's sin/cos/exp/log/sqrt are not the C
library's (which Python's `math` uses), Python's `v ** 2` is the C library's
`pow`, which now and then differs from `v * v` in the last bit, and the
projected gradient is sqrt(dx² + dy²) where the original calls hypot. So most
starts end bitwise equal to the original's Python-float loop
(`run_toy_reference`, kept for this comparison) and the others agree to
~1e-15, except at the rare starts whose path passes so close to a saddle that
a last-bit difference changes it (the g_pbgd baseline has three of 1000;
there a one-ulp nudge of the original's own starting point changes its step
count too), and in runs that never converge and wander chaotically until the
step cap. Either can change the third decimal of a FINAL_METRICS value
(g_pbgd baseline: convergence_steps 303.323 here, 303.318 in Python floats).

Where the original crashes. Python's float arithmetic raises where torch's
returns inf: when an iterate diverges, `(x + y) ** 2` in `toy_g` raises
OverflowError (|x + y| > ~1.3e154) or `math.cos(4y + 2)` in `toy_f` raises
ValueError (y infinite), and the original driver stops with a traceback in
the middle of its loop over starts. Both implementations detect this per
start and return the first start (in run order) at which it happens as
`ToyResult.failure`, with the runs before it; `emit_toy_result` prints their
lines as the original did and then raises `ToyDivergedError`.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import IO, Callable

import torch

from ...metrics import emit
from .config import DEFAULT_TOY, ToyProblemConfig, ToyStrategy

# ---------------------------------------------------------------------------
# The original's scalar functions (§5.1, §5.2), verbatim in formula and order.
# ---------------------------------------------------------------------------


def toy_f(x: float, y: float) -> float:
    return math.cos(4.0 * y + 2.0) / (1.0 + math.exp(2.0 - 4.0 * x)) + 0.5 * math.log((4.0 * x - 2.0) ** 2 + 1.0)


def toy_df(x: float, y: float) -> tuple[float, float]:
    """The original's gradient of f: its x-component squares only the exponential in the denominator (§5.2)."""
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
    """Gradient of p = ½(∂g/∂y)², the G-PBGD penalty (a driver addition, §5.2)."""
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
    """(x0, y0) of every run: x0 then y0 drawn uniformly from one `random.Random(seed)`, run after run (§5.5)."""
    rng = random.Random(seed)
    points = []
    for _ in range(config.num_runs):
        x = rng.uniform(config.init_x_lower, config.init_x_upper)
        y = rng.uniform(config.init_y_lower, config.init_y_upper)
        points.append((x, y))
    return points


# ---------------------------------------------------------------------------
# Results and metrics
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ToyRun:
    """One start's outcome: what its TRAIN_METRICS line prints (§5.6)."""

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
    metrics: dict[str, float] | None  # §5.6; None when there is a failure
    failure: ToyFailure | None = None


def _plain_sum(values) -> float:
    """Left-to-right float addition, as `sum` did on Python 3.10 (3.12's `sum` compensates)."""
    total = 0.0
    for value in values:
        total += value
    return total


def toy_metrics(runs: list[ToyRun], runtime_sec: float) -> dict[str, float]:
    """The FINAL_METRICS of §5.6, in printing order."""
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
# The reference: the original's loop (§5.3-§5.6)
# ---------------------------------------------------------------------------


def run_toy_start(x: float, y: float, strategy: ToyStrategy, config: ToyProblemConfig = DEFAULT_TOY,
                  exact_gradient: bool = False, run: int = 0) -> ToyRun:
    """One start of the original's loop from (x, y), in Python floats (§5.3, §5.4).

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
            # Whatever happened, the first penalty value ends the run (§5.4).
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


# ---------------------------------------------------------------------------
# All starts at once
# ---------------------------------------------------------------------------


def _python_error(action: Callable[[], object]) -> tuple[str, str]:
    try:
        action()
    except (ArithmeticError, ValueError) as error:
        return type(error).__name__, str(error)
    raise AssertionError("expected a floating-point exception")


# What this Python raises for math.cos(±inf) in toy_f and for a finite (x + y) ** 2 overflowing in toy_g.
_DOMAIN_ERROR = _python_error(lambda: math.cos(math.inf))
_SQUARE_OVERFLOW = _python_error(lambda: 1e300 ** 2)


def _scalar_op(function: Callable[..., torch.Tensor]) -> Callable[..., float]:
    return lambda *values: function(*(torch.tensor(v, dtype=torch.float64) for v in values)).item()


# Torch's float64 elementary functions on Python floats: with them, plain float arithmetic computes
# what the tensor code computes, bit for bit (IEEE + - * / are correctly rounded everywhere; torch's sqrt
# is not always, so it comes from torch too).
# The projected gradient is sqrt(dx² + dy²), not hypot as in the original: torch's vectorised and scalar
# hypot differ in the last bit, which would make the result depend on how starts are batched.
SCALAR_TORCH_OPS = SimpleNamespace(sin=_scalar_op(torch.sin), cos=_scalar_op(torch.cos), exp=_scalar_op(torch.exp),
                                   log=_scalar_op(torch.log), sqrt=_scalar_op(torch.sqrt))


def _penalized_terms(x, y, method: str, gamma: float, exact_gradient: bool, ops=torch):
    """`toy_penalized_gradient` on tensors (or floats with `SCALAR_TORCH_OPS`), in the original's order and association.

    Returns (f, d_x, d_y, 4y + 2, x + y); the last two let the caller see where the original raises.
    Python's `v ** 2` is written `v * v` (torch has no C-library `pow`).
    """
    # toy_f
    a = y * 4.0 + 2.0  # 4.0 * y + 2.0
    cos_a = ops.cos(a)
    x4 = x * 4.0
    exp_term = ops.exp(2.0 - x4)
    one_plus_exp = exp_term + 1.0
    w = x4 - 2.0
    w_sq_plus_1 = w * w + 1.0
    upper = cos_a / one_plus_exp + ops.log(w_sq_plus_1) * 0.5
    # toy_df / toy_df_exact
    num = exp_term * 4.0 * cos_a
    den = one_plus_exp * one_plus_exp if exact_gradient else exp_term * exp_term + 1.0
    grad_fx = num / den + (x * 16.0 - 8.0) / w_sq_plus_1
    grad_fy = ops.sin(a) * -4.0 / one_plus_exp
    # toy_dg / toy_gpbgd_penalty_grad
    s = x + y
    sin_s = ops.sin(s)
    cos_s = ops.cos(s)
    x_sin_cos = x * sin_s * cos_s
    if method == "v_pbgd":
        grad_gx = (s + sin_s * sin_s * 0.5 + x_sin_cos) * 2.0
        grad_gy = (s + x_sin_cos) * 2.0
    elif method == "g_pbgd":
        gy = (s + x_sin_cos) * 2.0
        x_c2 = x * (cos_s * cos_s - sin_s * sin_s)
        grad_gx = gy * ((sin_s * cos_s + 1.0 + x_c2) * 2.0)
        grad_gy = gy * ((x_c2 + 1.0) * 2.0)
    else:
        raise ValueError(f"Unsupported toy method: {method}")
    return upper, grad_fx + grad_gx * gamma, grad_fy + grad_gy * gamma, a, s


class _VectorisedToy:
    """The state of every start and one step of all of them (no host synchronisation)."""

    def __init__(self, points: list[tuple[float, float]], strategy: ToyStrategy, config: ToyProblemConfig,
                 exact_gradient: bool, device: torch.device):
        kw = dict(dtype=torch.float64, device=device)
        start = torch.tensor(points, **kw).reshape(-1, 2)
        self.x, self.y = start[:, 0].clone(), start[:, 1].clone()
        n = self.x.shape[0]
        self.objective = torch.full((n,), math.nan, **kw)
        self.residual = torch.full((n,), math.inf, **kw)
        self.projected_grad = torch.full((n,), math.inf, **kw)
        self.steps = torch.zeros(n, dtype=torch.int64, device=device)
        self.active = torch.ones(n, dtype=torch.bool, device=device)
        self.errored = torch.zeros(n, dtype=torch.bool, device=device)
        self.domain_error = torch.zeros(n, dtype=torch.bool, device=device)
        self.method, self.exact_gradient = strategy.method, exact_gradient
        self.gamma = float(strategy.gams[0])
        self.alpha = strategy.alpha0 / strategy.gams[0]
        # A tensor divisor: CUDA divides by a Python scalar as a multiplication by its reciprocal.
        self.alpha_divisor = torch.tensor(self.alpha, **kw)
        self.x_lower, self.x_upper, self.tol = config.x_lower, config.x_upper, config.stationarity_tol

    def step(self) -> None:
        x, y, alpha = self.x, self.y, self.alpha
        upper, grad_x, grad_y, a, s = _penalized_terms(x, y, self.method, self.gamma, self.exact_gradient)
        # The original raises here for this start: math.cos(±inf) in toy_f, else (x + y) ** 2 overflowing in toy_g.
        # (x stays within the validated bounds, so those are the only ways.)
        a_inf = torch.isinf(a)
        raised = (a_inf | torch.isinf(s * s)).logical_and_(self.active)
        self.errored.logical_or_(raised)
        self.domain_error = torch.where(raised, a_inf, self.domain_error)
        moving = self.active.logical_xor_(raised)  # in place: self.active is `moving` until the end of the step
        x_next = torch.clamp(x - grad_x * alpha, self.x_lower, self.x_upper)
        y_next = y - grad_y * alpha
        dx, dy = (x - x_next) / self.alpha_divisor, (y - y_next) / self.alpha_divisor
        projected_grad = torch.sqrt(dx * dx + dy * dy)  # not hypot: see SCALAR_TORCH_OPS
        residual = torch.abs(x_next + y_next)
        self.steps.add_(moving)
        self.objective = torch.where(moving, upper, self.objective)
        self.residual = torch.where(moving, residual, self.residual)
        self.projected_grad = torch.where(moving, projected_grad, self.projected_grad)
        converged = (projected_grad <= self.tol).logical_and_(moving)
        self.active.logical_xor_(converged)
        # Stopped starts keep moving; their recorded values are frozen above.
        self.x, self.y = x_next, y_next


@dataclass(frozen=True)
class StartOutcome:
    """Where one start's iteration ended, before the original's bookkeeping (§5.4) turns it into a ToyRun."""

    steps: int  # iterations completed
    converged: bool
    error: str | None  # "domain" (math.cos(±inf)) or "overflow" ((x + y) ** 2): the original raises here
    objective: float
    residual: float
    projected_grad: float


def toy_outcomes_vectorised(points: list[tuple[float, float]], strategy: ToyStrategy, config: ToyProblemConfig,
                            exact_gradient: bool, device: str | torch.device = "cpu",
                            sync_every: int = 256) -> list[StartOutcome]:
    """Every start at once as float64 tensors on `device`; the host looks only every `sync_every` steps."""
    if sync_every <= 0:
        raise ValueError("sync_every must be positive.")
    state = _VectorisedToy(points, strategy, config, exact_gradient, torch.device(device))
    max_steps, done = config.max_steps_per_gamma, 0
    while done < max_steps:
        chunk = min(sync_every, max_steps - done)
        for _ in range(chunk):
            state.step()
        done += chunk
        if done < max_steps and not bool(state.active.any()):
            break
    steps = state.steps.tolist()
    objective, residual, projected_grad = torch.stack(
        [state.objective, state.residual, state.projected_grad]).cpu().tolist()
    active, errored, domain = (t.tolist() for t in (state.active, state.errored, state.domain_error))
    return [StartOutcome(steps[i], not (active[i] or errored[i]),
                         ("domain" if domain[i] else "overflow") if errored[i] else None,
                         objective[i], residual[i], projected_grad[i]) for i in range(len(points))]


def toy_outcome_one_by_one(x: float, y: float, strategy: ToyStrategy, config: ToyProblemConfig,
                           exact_gradient: bool) -> StartOutcome:
    """One start in a plain loop of Python floats with torch's elementary functions.

    The straightforward computation the vectorised one must equal bit for bit (`SCALAR_TORCH_OPS`).
    """
    gamma = float(strategy.gams[0])
    alpha = strategy.alpha0 / gamma
    objective, residual, projected_grad = math.nan, math.inf, math.inf
    ops = SCALAR_TORCH_OPS
    for step in range(config.max_steps_per_gamma):
        upper, grad_x, grad_y, a, s = _penalized_terms(x, y, strategy.method, gamma, exact_gradient, ops)
        if math.isinf(a) or math.isinf(s * s):
            return StartOutcome(step, False, "domain" if math.isinf(a) else "overflow", objective, residual,
                                projected_grad)
        x_next = min(max(x - grad_x * alpha, config.x_lower), config.x_upper)
        y_next = y - grad_y * alpha
        objective, residual = upper, abs(x_next + y_next)
        dx, dy = (x - x_next) / alpha, (y - y_next) / alpha
        projected_grad = ops.sqrt(dx * dx + dy * dy)
        x, y = x_next, y_next
        if projected_grad <= config.stationarity_tol:
            return StartOutcome(step + 1, True, None, objective, residual, projected_grad)
    return StartOutcome(config.max_steps_per_gamma, False, None, objective, residual, projected_grad)


def toy_result(outcomes: list[StartOutcome], strategy: ToyStrategy, config: ToyProblemConfig,
               runtime_sec: float) -> ToyResult:
    """The original's bookkeeping: failures count len(gams) x the cap (§5.4); the first raising start ends it."""
    runs: list[ToyRun] = []
    for i, outcome in enumerate(outcomes):
        if outcome.error is not None:
            error = _DOMAIN_ERROR if outcome.error == "domain" else _SQUARE_OVERFLOW
            return ToyResult(runs, None, ToyFailure(i, outcome.steps, *error))
        steps = outcome.steps if outcome.converged else len(strategy.gams) * config.max_steps_per_gamma
        runs.append(ToyRun(i, steps, outcome.objective, outcome.residual, outcome.projected_grad, outcome.converged))
    return ToyResult(runs, toy_metrics(runs, runtime_sec))


def run_toy_vectorised(strategy: ToyStrategy, config: ToyProblemConfig = DEFAULT_TOY, seed: int = 42,
                       exact_gradient: bool = False, device: str | torch.device = "cpu",
                       sync_every: int = 256) -> ToyResult:
    """Every start of `run_toy_reference` as one float64 computation on `device` (see the module doc).

    `runtime_sec` covers the computation (no printing; `run_toy` times both).
    """
    strategy.validate()
    config.validate()
    start_time = time.perf_counter()
    if config.max_steps_per_gamma > 0 and strategy.alpha0 / strategy.gams[0] == 0.0:
        # alpha underflowed: every start raises ZeroDivisionError on its first step; the first ends the original.
        first = run_toy_reference(strategy, replace(config, num_runs=1), seed, exact_gradient)
        return ToyResult([], None, first.failure)
    outcomes = toy_outcomes_vectorised(toy_starting_points(config, seed), strategy, config, exact_gradient, device,
                                       sync_every)
    return toy_result(outcomes, strategy, config, time.perf_counter() - start_time)


# ---------------------------------------------------------------------------
# Output (§9.1)
# ---------------------------------------------------------------------------


def emit_toy_run(run: ToyRun, stream: IO[str] | None = None) -> str:
    """`TRAIN_METRICS run=… step=… objective=… residual=… projected_grad=… success=…` (6 dp)."""
    return emit("TRAIN_METRICS", {"run": run.run, "step": run.steps, "objective": run.objective,
                                  "residual": run.residual, "projected_grad": run.projected_grad,
                                  "success": int(run.success)}, stream=stream)


def emit_toy_final(metrics: dict[str, float], stream: IO[str] | None = None) -> str:
    """`FINAL_METRICS convergence_steps=… … score=…`, every value with 6 dp, in §5.6 order."""
    return emit("FINAL_METRICS", {key: float(value) for key, value in metrics.items()}, stream=stream)


def emit_toy_result(result: ToyResult, stream: IO[str] | None = None) -> list[str]:
    """The original's lines for a finished result: one per run, then FINAL_METRICS (or raise at a failure)."""
    lines = [emit_toy_run(run, stream) for run in result.runs]
    if result.failure is not None:
        raise ToyDivergedError(result.failure)
    lines.append(emit_toy_final(result.metrics, stream))
    return lines


def run_toy(strategy: ToyStrategy, config: ToyProblemConfig = DEFAULT_TOY, seed: int = 42,
            exact_gradient: bool = False, device: str | torch.device = "cpu", vectorised: bool = True,
            stream: IO[str] | None = None) -> dict[str, float]:
    """Run the toy benchmark and print its lines as the original does; return the final metrics.

    By default all starts at once on `device` (`run_toy_vectorised`); `vectorised=False` runs the original's
    own Python-float loop, which differs only at ill-conditioned starts (module docstring).

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
