"""Privacy audit: the noise a mechanism really adds, relative to its real per-example sensitivity.

The benchmark's accountant sees only the σ a mechanism reports. At one step
per epoch (and the first step of a run: driver.train_epoch) the driver hands
the step's per-example gradients to `audit_step`,
which calls `clip_and_noise` on snapshots of the mechanism: forks of its
process (strategy_host.HostedObject.snapshot) whose call takes the same path,
with the same stack, as a training call, so the real mechanism, the model
and the privacy spend are untouched and a run gives bit-identical results
with or without the audit. The snapshots draw from the live generator
states, or from states further along the same streams (advanced_states), not
from reseeded ones. Everything else the audit chooses is drawn from the
driver's private generator (`random.Random` seeded from the operating
system, which no strategy sees): the audited batch, the replaced example, how
far each stream is advanced, and the probes' directions, signs and sizes.

Method. Outputs are compared under *common random numbers*: with the
generators reset to the same state, a data-independent mechanism draws the
same noise, so differences of outputs are noise-free.

1. Noise: the batch as it is, under K+1 random states; the spread across
   states gives each parameter tensor's noise standard deviation s_l.
2. Sensitivity: one example (chosen at random) replaced by each of {itself,
   zero, +M₁·u₁, −M₂·u₁, +M₃·u₂, −M₄·u₂, four other examples of the batch
   chosen at random}, with u₁, u₂ random directions of
   unit norm in every parameter tensor, random signs, and each M between
   10² and 10⁶ times the batch's largest gradient norm (or the clip norm, or
   1), so every clipping or normalisation rule saturates. The largest
   difference between two of these outputs, whitened tensor by tensor by
   s_l, is Δ; a mechanism with noise multiplier σ on per-example
   sensitivity S gives Δ = 2S/(σS) (replace-one, from an antipodal pair), so
   σ̂ = 2/Δ. Per-tensor noise makes σ̂ right for per-tensor clipping (σ/√L)
   too.

Error of σ̂. s_l² is a mean over K·n_l degrees of freedom, so σ̂'s relative
standard error is about (Σ_l 1/(2K·n_l))^½ / L when every tensor carries an
equal share: 0.75 % for MNISTNet (L = 8 tensors, the smallest of 10 values)
with K = 32, 0.4 % for CIFAR10Net (18 tensors).
tests/test_dpsgd_audit.py measures it over 20 independent audits of the
standard mechanism and requires every σ̂ within 3 % of the true σ.
3. Data dependence: the noise realisation (output under state 1 minus under
   state 0) must be the same for every batch; if it is not, the noise
   scale depends on the data (e.g. a quantile-adaptive threshold computed
   without noise), an unaccounted leak. Δ is then taken over the pairs
   whose noise did agree (±M·u have equal norms, so they usually do): a
   changed noise scale would otherwise dominate Δ by an amount that
   depends on M. Each batch's s_l is the unchanged batch's (step 1) times
   the ratio of the sizes of their realisations (exact under common random
   numbers), so a pair is whitened by its own noise.

Verdict over the run: `under-noised:<r>` when the smallest σ̂/σ' is below
UNDER_NOISED (σ' the multiplier accounted for that step's epoch,
accounting.PrivacyLedger), else `data-dependent` when any step showed it,
else `ok`; `not-audited` when no step could be audited (a mechanism whose
snapshot dies or raises on the audit's inputs, or returns no tensors).

Limits: a probe is a call the mechanism cannot tell from training by its stack, by a copy of itself or by a
reseeded generator (tests/test_dpsgd_host.py), but it can still tell by what a fork changes (its process ID,
its parent's, its process times), by a generator state that does not continue its last call's (every probe
but the first few starts from an advanced state), or by the probes' inputs themselves (a batch with one
example replaced by a huge one), and on a GPU the snapshots are deep copies in the mechanism's process (a
fork cannot use the device), which `__deepcopy__` can recognise: the audit catches honest mistakes and the
shipped tricks, it is evidence, not proof. It checks the one release of a step, not leakage carried to later
steps through un-noised state; it finds the sensitivity only along the
replacements it tries (a lower bound, so σ̂ can miss under-noising but its
flags are real up to the estimate's ~2% error); noise must come from the
global generators (noise from a mechanism's own generator looks like no
noise) and be independent within each tensor; data-dependent choices that
leave the step's noise scale unchanged are not seen as such.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass

import torch

from ...strategy_host import advanced_states, rng_states

NOISE_STATES = 32  # K: noise draws beyond the first, per audited step
PROBE_SCALES = (2.0, 6.0)  # probe sizes: 10^U(2, 6) times the batch's largest gradient norm
PROBE_DIRECTIONS = 2  # random directions, each probed from both sides
PEERS = 4  # other examples of the batch, each in turn in the replaced example's place
UNDER_NOISED = 0.9  # flag below this measured / accounted σ (the verdict; `mlsbench` then does not rank the run)
# The largest relative error of σ̂ an honest mechanism shows (20 audits of the standard one, test_dpsgd_audit.py):
# `corrected` accounts σ̂ times 1 + this when that is below the claim (accounting.PrivacyLedger).
MEASUREMENT_MARGIN = 0.03
SAME_NOISE_RTOL = 1e-4  # float rounding gives ~1e-7; one changed adaptive threshold step gives >1e-3


@dataclass(frozen=True)
class AuditPoint:
    """One audited step: its epoch, the measured multiplier σ̂ and whether the noise depended on the data."""

    epoch: int
    sigma: float
    data_dependent: bool


def random_direction(grads: list[torch.Tensor], rng: random.Random) -> list[torch.Tensor]:
    """A random direction with unit norm in every tensor (its own generator, so no global draw)."""
    generator = torch.Generator().manual_seed(rng.getrandbits(63))
    blocks = [torch.randn(g.shape[1:], generator=generator, dtype=torch.float64) for g in grads]
    return [(b / b.norm()).to(g.device, g.dtype) for b, g in zip(blocks, grads)]


def probes(grads: list[torch.Tensor], index: int, max_grad_norm: float,
           rng: random.Random) -> list[list[torch.Tensor]]:
    """The replacements of step 2: zero, each random direction from both sides at random sizes, then copies of
    other examples of the batch (PEERS, drawn at random): an adaptive threshold that counts examples above it
    relative to a centre of its own sees zero and the huge probes on the same side as a large example, but a
    peer on the other side about half the time."""
    norms = torch.sqrt(sum(g.flatten(1).double().pow(2).sum(dim=1) for g in grads))
    base = max(1.0, max_grad_norm, float(norms.max()))
    found = [[torch.zeros_like(g[0]) for g in grads]]
    for _ in range(PROBE_DIRECTIONS):
        direction, sign = random_direction(grads, rng), rng.choice((-1.0, 1.0))
        for side in (sign, -sign):
            size = side * base * 10 ** rng.uniform(*PROBE_SCALES)
            found.append([size * u for u in direction])
    others = [j for j in range(grads[0].shape[0]) if j != index]
    found += [[g[j].clone() for g in grads] for j in rng.sample(others, min(PEERS, len(others)))]
    return found


def with_example(grads: list[torch.Tensor], index: int, example: list[torch.Tensor] | None) -> list[torch.Tensor]:
    """A fresh copy of the batch (the mechanism may work in place), example `index` replaced when given."""
    batch = [g.clone() for g in grads]
    if example is not None:
        for g, e in zip(batch, example):
            g[index] = e
    return batch


def release(mechanism, grads: list[torch.Tensor], step: int, epoch: int, states: dict) -> list[torch.Tensor]:
    """One output of a snapshot of the mechanism under generator `states`, as float64 tensors."""
    out = mechanism.snapshot("clip_and_noise", (grads, step, epoch), states)
    if not isinstance(out, (list, tuple)) or not out or not all(isinstance(t, torch.Tensor) for t in out):
        raise TypeError("clip_and_noise returned no list of tensors")
    return [t.detach().double() for t in out]


def norm(tensors: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float(t.pow(2).sum()) for t in tensors))


def whitened_norm(a: list[torch.Tensor], b: list[torch.Tensor], scale: list[float]) -> float:
    total = 0.0
    for x, y, s in zip(a, b, scale):
        difference = float((x - y).pow(2).sum())
        total += difference / s**2 if s > 0 else (math.inf if difference > 0 else 0.0)
    return math.sqrt(total)


def audit_step(mechanism, grads: list[torch.Tensor], step: int, epoch: int, max_grad_norm: float,
               rng: random.Random, device: torch.device) -> AuditPoint | None:
    """Measure σ̂ at one step on snapshots of `mechanism` (a HostedObject, or its in-process LocalObject), every
    choice drawn from the private `rng`; None when the mechanism cannot be audited."""
    index = rng.randrange(grads[0].shape[0])
    live = rng_states(device)
    states = [live] + [advanced_states(live, rng, device) for _ in range(NOISE_STATES)]
    examples = probes(grads, index, max_grad_norm, rng)
    try:
        noisy = [release(mechanism, with_example(grads, index, None), step, epoch, state) for state in states]
        replaced = [noisy[:2]] + [[release(mechanism, with_example(grads, index, e), step, epoch, state)
                                   for state in states[:2]] for e in examples]
    except Exception:  # noqa: BLE001 - a mechanism that breaks on snapshots or audit inputs is reported unaudited
        return None
    noise = [float(torch.stack(draws).var(dim=0).mean().sqrt()) for draws in zip(*noisy)]
    realisations = [[x1 - x0 for x0, x1 in zip(*outputs)] for outputs in replaced]
    # Each batch's noise scale per tensor: the batch as it is, times the ratio of the realisations' sizes.
    scales = [[s * norm([r]) / norm([r0]) if norm([r0]) > 0 else s for s, r, r0 in zip(noise, real, realisations[0])]
              for real in realisations]
    tolerance = SAME_NOISE_RTOL * norm(realisations[0])
    same_noise = {(a, b): norm([x - y for x, y in zip(realisations[a], realisations[b])]) <= tolerance
                  for a, b in itertools.combinations(range(len(replaced)), 2)}
    pairs = [pair for pair, same in same_noise.items() if same] or list(same_noise)
    delta = max(whitened_norm(replaced[a][0], replaced[b][0], [max(s, t) for s, t in zip(scales[a], scales[b])])
                for a, b in pairs)
    data_dependent = not all(same for (a, _), same in same_noise.items() if a == 0)
    return AuditPoint(epoch, 2 / delta if delta > 0 else math.inf, data_dependent)


def verdict(points: list[AuditPoint | None], accounted: list[float]) -> tuple[str, float]:
    """(`ok` | `under-noised:<r>` | `data-dependent` | `not-audited`, smallest σ̂/σ'); `accounted[e-1]` is σ'_e."""
    audited = [p for p in points if p is not None]
    if not audited:
        return "not-audited", math.nan
    ratio = min(p.sigma / accounted[p.epoch - 1] for p in audited)
    if ratio < UNDER_NOISED:
        return f"under-noised:{ratio:.2f}", ratio
    if any(p.data_dependent for p in audited):
        return "data-dependent", ratio
    return "ok", ratio
