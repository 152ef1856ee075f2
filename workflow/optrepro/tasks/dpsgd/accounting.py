"""Privacy accounting of a run under both protocols: the σ to calibrate, the per-step σ, the ε spent.

The original asks the mechanism once per epoch for one σ and accounts *all*
steps so far with it: a report σ_e after k_e
steps claims Σ_{t≤k_e} σ_t⁻² = k_e/σ_e². `PrivacyLedger` turns the reports
into a multiplier per epoch, σ'_e = the smaller of the report itself and the
value that makes the claimed total hold given the epochs already accounted:

    σ'_e = min(σ_e, ((k_e − k_{e−1}) / (k_e/σ_e² − Σ_{f<e} n_f/σ'_f²))^½)

This is exact for a constant σ and for a mechanism that reports the
equivalent σ of a schedule as the contract asks (noise_decay), and it never
lets a later report take back spend already accounted. Under `corrected`
the driver also passes the privacy audit's measured multiplier σ̂_e of the
epoch, and the epoch is accounted with min(σ'_e, σ̂_e·(1 + MEASUREMENT_MARGIN)):
the claim while it lies within the measurement's error of the noise actually
added (an honest mechanism's σ̂ lands within 3 % of its σ), else the largest
σ that measurement allows, however small the shortfall. A standard
subsampled-Gaussian accountant (Opacus RDP or PRV) then composes the steps
with their own σ'_e. Opacus assumes Poisson sampling with rate q and
add/remove neighbours, which is how the driver samples under `corrected`
(vectorised.poisson_batches); under `mlsbench` its shuffled fixed-size
batches do not satisfy the assumption, so `epsilon_rdp` there is a figure
for comparison, not a bound.
"""

from __future__ import annotations

import math
import warnings

from opacus.accountants import create_accountant
from opacus.accountants.utils import get_noise_multiplier

from .audit import MEASUREMENT_MARGIN
from .core import calibrate_noise_to_epsilon, compute_epsilon

BENCHMARK = "benchmark"  # the original's formula (core.compute_epsilon); other names are Opacus accountants


class BudgetExceeded(RuntimeError):
    """A corrected run whose privacy spend would exceed its target."""


def opacus_epsilon(accountant: str, groups: list[tuple[float, float, int]], delta: float) -> float:
    """ε of (σ, q, steps) groups composed by an Opacus accountant.

    Opacus warns when the best RDP order is the grid's largest, which it is for
    σ well below 1 (the benchmark's calibrated σ); the ε is still a valid bound.
    """
    if not groups:
        return 0.0
    tracker = create_accountant(accountant)
    tracker.history = list(groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(tracker.get_epsilon(delta=delta))


def calibrate_sigma(accountant: str, target_epsilon: float, delta: float, q: float, steps: int) -> float:
    """σ for which `steps` steps at rate q spend `target_epsilon`: the original's bisection or Opacus' own."""
    if accountant == BENCHMARK:
        return calibrate_noise_to_epsilon(target_epsilon, steps, q, delta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(get_noise_multiplier(target_epsilon=target_epsilon, target_delta=delta, sample_rate=q,
                                          steps=steps, accountant=accountant, epsilon_tolerance=0.01))


class PrivacyLedger:
    """The mechanism's σ reports of one run, as per-epoch multipliers, and ε under any accountant."""

    def __init__(self, q: float, delta: float):
        self.q, self.delta = q, delta
        self.steps = 0
        self.reported = math.nan
        self.claimed: list[float] = []  # σ'_e: what the reports claim for epoch e
        self.epochs: list[tuple[float, int]] = []  # (σ accounted for epoch e, steps of epoch e)

    def report(self, steps: int, sigma: float, measured: float | None = None) -> float:
        """Record the report σ after `steps` steps in all, and the audit's σ̂ of the epoch when it is to be
        trusted over the claim; return the multiplier accounted for the new steps."""
        new = steps - self.steps
        previous = sum(n / s**2 for s, (_, n) in zip(self.claimed, self.epochs))
        claimed = steps / sigma**2
        # The report itself, unless the claim needs less noise on the new steps (beyond float rounding).
        if previous + new / sigma**2 >= claimed * (1 - 1e-12):
            multiplier = sigma
        else:
            multiplier = math.sqrt(new / (claimed - previous))
        self.claimed.append(multiplier)
        if measured is not None:
            multiplier = min(multiplier, measured * (1 + MEASUREMENT_MARGIN))
        self.epochs.append((multiplier, new))
        self.steps, self.reported = steps, sigma
        return multiplier

    def groups(self, extra: tuple[float, int] | None = None) -> list[tuple[float, float, int]]:
        """(σ, q, steps) for Opacus, consecutive epochs of equal σ merged as its own `step()` would."""
        merged: list[tuple[float, float, int]] = []
        for sigma, n in self.epochs + ([extra] if extra else []):
            if merged and merged[-1][0] == sigma:
                merged[-1] = (sigma, self.q, merged[-1][2] + n)
            elif n > 0:
                merged.append((sigma, self.q, n))
        return merged

    def epsilon(self, accountant: str) -> float:
        """ε spent so far: the benchmark's way (all steps at the last report) or composed per epoch by Opacus."""
        if accountant == BENCHMARK:
            return compute_epsilon(self.steps, self.reported, self.q, self.delta)[0]
        return opacus_epsilon(accountant, self.groups(), self.delta)

    def check_budget(self, accountant: str, target_epsilon: float, total_steps: int, epoch: int,
                     epochs: int) -> None:
        """Raise BudgetExceeded when the spend so far plus the remaining steps at the last σ'_e exceeds the target."""
        remaining = (self.epochs[-1][0], total_steps - self.steps)
        projected = opacus_epsilon(accountant, self.groups(remaining), self.delta)
        if projected > target_epsilon * (1 + 1e-9):
            raise BudgetExceeded(
                f"privacy budget exceeded: after epoch {epoch}/{epochs} the noise would spend "
                f"epsilon={projected:.4f} over {total_steps} steps, above the target {target_epsilon} "
                f"(accountant {accountant}, delta={self.delta}, per-epoch sigma accounted "
                f"{','.join(f'{s:.4f}' for s, _ in self.epochs)})")
