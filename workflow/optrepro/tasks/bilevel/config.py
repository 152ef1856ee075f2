"""The bilevel task's toy configuration, without torch: the original's dataclasses (bilevel.md §3.1, §3.3).

Kept free of torch so that the Snakefile (parsed on every job start) can read
names and sizes cheaply. Names, types, defaults and the `ValueError` messages
of `ToyStrategy.validate` are the original driver's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

TOY_METHODS = ("v_pbgd", "g_pbgd")
# Bound on every x a run can see (overrides only). Within it no term of f or ∇f that depends on x alone
# overflows (e^{2-4x} squared does below x ≈ -88), so a run can only raise through a diverging y.
X_BOUND = 50.0


@dataclass(frozen=True)
class ToyProblemConfig:
    """The toy problem's fixed settings (§3.1); `DEFAULT_TOY` is the one the original uses."""

    x_lower: float = 0.0
    x_upper: float = 3.0
    init_x_lower: float = 0.0
    init_x_upper: float = 3.5
    init_y_lower: float = -5.0
    init_y_upper: float = 8.5
    num_runs: int = 1000
    stationarity_tol: float = 1e-5
    residual_tol: float = 5e-2  # declared but never used by the driver (§3.1)
    max_steps_per_gamma: int = 20_000

    def validate(self) -> None:
        """Checks for scale overrides (an optrepro addition: the original never changes DEFAULT_TOY).

        Raises ValueError on the first failure, in field order.
        """
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", float) and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
                raise ValueError(f"{f.name} must be a number, got {value!r}.")
            if f.type in ("int", int) and not (isinstance(value, int) and not isinstance(value, bool)):
                raise ValueError(f"{f.name} must be an integer, got {value!r}.")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name} must be finite, got {value!r}.")
        for name in ("x_lower", "x_upper", "init_x_lower", "init_x_upper"):
            if abs(getattr(self, name)) > X_BOUND:
                raise ValueError(f"{name} must lie in [-{X_BOUND:g}, {X_BOUND:g}].")
        if self.x_lower > self.x_upper:
            raise ValueError("x_lower must not exceed x_upper.")
        if self.init_x_lower > self.init_x_upper:
            raise ValueError("init_x_lower must not exceed init_x_upper.")
        if self.init_y_lower > self.init_y_upper:
            raise ValueError("init_y_lower must not exceed init_y_upper.")
        if self.num_runs <= 0:
            raise ValueError("num_runs must be positive.")
        if self.stationarity_tol < 0.0:
            raise ValueError("stationarity_tol must be non-negative.")
        if self.max_steps_per_gamma < 0:
            raise ValueError("max_steps_per_gamma must be non-negative.")


@dataclass(frozen=True)
class ToyStrategy:
    """What `get_toy_strategy()` returns (§3.3): only `gams[0]` is ever used, len(gams) sizes the failure count."""

    method: str
    gams: tuple[float, ...]
    alpha0: float

    def validate(self) -> None:
        """The original's checks, in its order and with its messages."""
        if self.method not in {"v_pbgd", "g_pbgd"}:
            raise ValueError(f"Unsupported toy method: {self.method}")
        if not self.gams:
            raise ValueError("Toy strategy must contain at least one penalty value.")
        if any(gam <= 0.0 for gam in self.gams):
            raise ValueError(f"Penalty values must be positive, got {self.gams}")
        if self.alpha0 <= 0.0:
            raise ValueError("alpha0 must be positive.")


DEFAULT_TOY = ToyProblemConfig()
