"""The toy's fast engine: all starts at once as one float64 computation on a device.

Every start follows the original's formulas (`toy.toy_penalized_gradient`) in
the same order; per-start masks freeze the recorded values of starts that
have stopped, and the host looks at the device only every `sync_every` steps.
`toy_outcome_one_by_one` is the plain one-start-at-a-time loop in Python
floats with torch's elementary functions (`SCALAR_TORCH_OPS`); the vectorised
computation equals it bit for bit on every start (tests/test_bilevel_toy.py).

How equal to the original's own loop (`toy.run_toy_reference`). Torch's
sin/cos/exp/log/sqrt are not the C library's (which Python's `math` uses),
Python's `v ** 2` is the C library's `pow`, which now and then differs from
`v * v` in the last bit, and the projected gradient is sqrt(dx² + dy²) where
the original calls hypot. So most starts end bitwise equal to the original's
loop and the others agree to ~1e-15, except at the rare starts whose path
passes so close to a saddle that a last-bit difference changes it, and in
runs that never converge and wander chaotically until the step cap. Either
can change the third decimal of a FINAL_METRICS value.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Callable

import torch

from .config import DEFAULT_TOY, ToyProblemConfig, ToyStrategy
from .toy import ToyFailure, ToyResult, ToyRun, run_toy_reference, toy_metrics, toy_starting_points


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
    """Where one start's iteration ended, before the original's bookkeeping turns it into a ToyRun."""

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
    """The original's bookkeeping: failures count len(gams) x the cap; the first raising start ends it."""
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
