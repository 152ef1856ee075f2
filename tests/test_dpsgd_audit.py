"""The DP-SGD privacy audit (optrepro.tasks.dpsgd.audit) on gradients of MNISTNet.

* the baseline `standard_dpsgd` passes, measured within 3% of its σ in each of 20 audits with independent
  private choices (example, random states, probe directions, signs and sizes);
* a mechanism that halves its noise but reports the same σ is flagged with a
  ratio near 0.5, per-tensor clipping with per-tensor noise near 1/√8;
* an un-noised quantile-adaptive threshold is flagged as data-dependent,
  and its σ is still measured right, also one counted around a centre of its own;
* the audit leaves the mechanism and every global random generator as it found them;
* a mechanism that cannot be audited is reported so, not failed.
"""

from __future__ import annotations

import math
import random
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from optrepro.strategy_host import LocalObject
from optrepro.tasks.dpsgd import audit
from optrepro.tasks.dpsgd.audit import AuditPoint, audit_step, verdict
from optrepro.tasks.dpsgd.core import MNISTNet
from optrepro.tasks.dpsgd.driver import DRIVER
from optrepro.tasks.dpsgd.vectorised import per_sample_gradients

STANDARD = Path(__file__).resolve().parent.parent / "strategies" / "dpsgd" / "standard_dpsgd.py"
SIGMA = 0.5
CPU = torch.device("cpu")
VARIANTS = {
    "half_noise": """
        class DPMechanism(Standard):
            def clip_and_noise(self, grads, step, epoch):
                self.noise_multiplier /= 2
                out = super().clip_and_noise(grads, step, epoch)
                self.noise_multiplier *= 2
                return out
        """,
    "adaptive": """
        class DPMechanism(Standard):
            def clip_and_noise(self, grads, step, epoch):
                batch = grads[0].shape[0]
                norms = torch.sqrt(sum(g.reshape(batch, -1).pow(2).sum(dim=1) for g in grads))
                above = (norms > self.max_grad_norm).float().mean().item()
                self.max_grad_norm = min(100.0, max(0.01, self.max_grad_norm * math.exp(0.2 * (above - 0.5))))
                return super().clip_and_noise(grads, step, epoch)
        """,
    "per_tensor": """
        class DPMechanism(Standard):
            def clip_and_noise(self, grads, step, epoch):
                out = []
                for g in grads:
                    norms = g.reshape(g.shape[0], -1).norm(dim=1)
                    factors = (self.max_grad_norm / norms.clamp(min=1e-8)).clamp(max=1.0)
                    mean = (g * factors.view(-1, *([1] * (g.dim() - 1)))).mean(dim=0)
                    out.append(mean + torch.randn_like(mean) * self.noise_multiplier * self.max_grad_norm / g.shape[0])
                return out
        """,
    "raises_on_large_gradients": """
        class DPMechanism(Standard):
            def clip_and_noise(self, grads, step, epoch):
                assert max(g.abs().max() for g in grads) < 1e3
                return super().clip_and_noise(grads, step, epoch)
        """,
}


def mechanism(tmp_path, variant=None):
    source = STANDARD.read_text()
    if variant:
        source += "\nStandard = DPMechanism\n" + textwrap.dedent(VARIANTS[variant])
    path = tmp_path / f"{variant or 'standard'}.py"
    path.write_text(source)
    return DRIVER.load_strategy(path).DPMechanism(max_grad_norm=1.0, noise_multiplier=SIGMA, n_params=26_010,
                                                  dataset_size=60_000, batch_size=64, epochs=5, target_epsilon=3.0,
                                                  target_delta=1e-5)


@pytest.fixture(scope="module")
def grads():
    """Per-example gradients of a fresh MNISTNet on 64 random images (global norms spread around the clip norm)."""
    torch.manual_seed(0)
    return per_sample_gradients(MNISTNet(), torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,)))


def test_standard_passes_and_the_estimate_is_within_3_percent(tmp_path, grads):
    standard = mechanism(tmp_path)
    points = [audit_step(standard, grads, 3, 1, 1.0, random.Random(seed), CPU) for seed in range(20)]
    ratios = np.array([p.sigma / SIGMA for p in points])
    assert not any(p.data_dependent for p in points)
    assert np.abs(ratios - 1).max() < 0.03, ratios
    assert len(set(ratios.tolist())) == 20  # the private choices really differ from audit to audit
    assert verdict(points[:1], [SIGMA]) == ("ok", points[0].sigma / SIGMA)


@pytest.mark.parametrize("variant, ratio", [("half_noise", 0.5), ("per_tensor", 8 ** -0.5)])
def test_under_noising_is_measured(tmp_path, grads, variant, ratio):
    point = audit_step(mechanism(tmp_path, variant), grads, 3, 1, 1.0, random.Random(7), CPU)
    assert point.sigma / SIGMA == pytest.approx(ratio, rel=0.04) and not point.data_dependent
    token, measured = verdict([point], [SIGMA])
    assert token == f"under-noised:{measured:.2f}" and " " not in token


def test_adaptive_threshold_is_data_dependent(tmp_path, grads):
    point = audit_step(mechanism(tmp_path, "adaptive"), grads, 3, 1, 1.0, random.Random(7), CPU)
    assert point.data_dependent and point.sigma == pytest.approx(SIGMA, rel=0.03)  # its ratio σ is still right
    assert verdict([point], [SIGMA])[0] == "data-dependent"


def test_audit_leaves_mechanism_and_generators_alone(tmp_path, grads):
    adaptive = mechanism(tmp_path, "adaptive")
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    saved = [g.clone() for g in grads]
    audit_step(adaptive, grads, 3, 1, 1.0, random.Random(7), CPU)
    assert adaptive.max_grad_norm == 1.0
    assert torch.equal(torch.get_rng_state(), before[0]) and random.getstate() == before[1]
    assert np.array_equal(np.random.get_state()[1], before[2])
    assert all(torch.equal(a, b) for a, b in zip(grads, saved))


def test_unauditable_mechanism_is_reported_not_failed(tmp_path, grads):
    unauditable = mechanism(tmp_path, "raises_on_large_gradients")
    assert audit_step(unauditable, grads, 3, 1, 1.0, random.Random(7), CPU) is None
    assert verdict([None, None], [SIGMA]) == ("not-audited", pytest.approx(float("nan"), nan_ok=True))


def test_verdict_compares_each_step_with_its_epoch_sigma():
    points = [AuditPoint(1, 1.0, False), AuditPoint(2, 0.5, True)]
    assert verdict(points, [1.0, 0.5]) == ("data-dependent", 1.0)
    assert verdict(points, [1.0, 1.0]) == ("under-noised:0.50", 0.5)
    assert verdict(points[:1] + [None], [1.0, 1.0]) == ("ok", 1.0)


@pytest.mark.parametrize("peers, flagged", [(0, range(1, 9)), (audit.PEERS, range(9, 11))])
def test_a_centred_adaptive_threshold_is_found_by_swapping_in_peers(monkeypatch, grads, peers, flagged):
    """`ema_centered_adaptive_clip` counts the residuals around its centre c above its threshold C, un-noised.
    When the batch's gradients share a large component that c has learnt (residuals g_i, ||c|| above every
    one), zero and the huge probes are all "above", as a large example is: with the audit's example above C
    (half the time) they do not move the count, and the dependence goes unseen (about 5 of 10 audits flag it).
    Other examples of the batch swapped in are on the other side of C about half the time each (at least 9 of 10
    audits flag it)."""
    monkeypatch.setattr(audit, "PEERS", peers)
    path = Path(__file__).resolve().parent.parent / "strategies" / "dpsgd" / "ema_centered_adaptive_clip.py"
    target = DRIVER.load_strategy(path).DPMechanism(
        max_grad_norm=1.0, noise_multiplier=SIGMA, n_params=26_010, dataset_size=60_000, batch_size=64, epochs=5,
        target_epsilon=3.0, target_delta=1e-5)._target
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(dim=1) for g in grads))
    direction = audit.random_direction(grads, random.Random(1))
    target.center = [3 * float(norms.max()) * d / math.sqrt(len(grads)) for d in direction]
    target.clip = float(norms.median())
    shifted = [g + c for g, c in zip(grads, target.center)]
    mechanism = LocalObject(str(path), target, CPU)
    points = [audit_step(mechanism, shifted, 3, 1, 1.0, random.Random(seed), CPU) for seed in range(10)]
    assert sum(point.data_dependent for point in points) in flagged
