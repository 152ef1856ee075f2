"""DP-SGD privacy accounting and configuration (dpsgd.md §4, §8).

* the benchmark's own formula gives the calibrated σ listed in §4.2 for all
  three benchmarks, and a standard accountant rates them at ε ≈ 98 and ≈ 7.7 (§8.4);
* the Opacus path (calibration, per-epoch composition, PRV) equals
  opacus.accountants used directly, one `step()` per training step;
* the ledger turns per-epoch reports into per-epoch multipliers: exact for a
  constant σ and for a schedule reported as its equivalent σ, never below
  a report's own claim, and the budget check refuses an over-spend;
* scale overrides, protocol/accountant pairing and job sizes; importing the
  task package does not import torch.
"""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import pytest
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

from optrepro.tasks.dpsgd import TASK
from optrepro.tasks.dpsgd.accounting import BudgetExceeded, PrivacyLedger, calibrate_sigma, opacus_epsilon
from optrepro.tasks.dpsgd.config import TaskConfigError, parse_overrides, resolve_config, train_examples
from optrepro.tasks.dpsgd.core import RDP_ORDERS, calibrate_noise_to_epsilon, compute_epsilon

DELTA = 1e-5


def setting(benchmark):
    config = resolve_config(benchmark, "mlsbench")
    n = train_examples(config)
    return config.batch_size / n, n // config.batch_size * config.epochs


@pytest.mark.parametrize("benchmark, steps, q, sigma", [("mnist", 1170, "0.0043", "0.2385"),
                                                        ("fmnist", 1170, "0.0043", "0.2385"),
                                                        ("cifar10", 5850, "0.0051", "0.6405")])
def test_benchmark_formula_reproduces_the_spec_sigma(benchmark, steps, q, sigma):
    rate, total = setting(benchmark)
    assert total == steps and f"{rate:.4f}" == q
    calibrated = calibrate_noise_to_epsilon(3.0, total, rate, DELTA)
    assert f"{calibrated:.4f}" == sigma
    epsilon, order = compute_epsilon(total, calibrated, rate, DELTA)
    assert abs(epsilon - 3.0) < 0.005 and order in RDP_ORDERS
    assert calibrate_sigma("benchmark", 3.0, DELTA, rate, total) == calibrated


def test_benchmark_formula_by_hand():
    assert len(RDP_ORDERS) == 151 and RDP_ORDERS[0] == 1.1 and RDP_ORDERS[98] == 10.9 and RDP_ORDERS[-1] == 63
    steps, sigma, q = 1000, 0.5, 0.01
    by_hand = min(steps * a * q**2 / (2 * sigma**2) + math.log(1 / DELTA) / (a - 1) + math.log(1 - 1 / a)
                  for a in RDP_ORDERS)
    assert compute_epsilon(steps, sigma, q, DELTA)[0] == pytest.approx(by_hand, rel=1e-12)
    # It depends on steps and q only through steps * q².
    assert compute_epsilon(4 * steps, sigma, q / 2, DELTA)[0] == pytest.approx(by_hand, rel=1e-12)
    assert compute_epsilon(1, 1e3, 1e-3, 0.5)[0] == 0.0  # floored at 0


@pytest.mark.parametrize("benchmark, epsilon", [("mnist", 98.03), ("cifar10", 7.73)])
def test_standard_accountant_rates_the_benchmark_sigma(benchmark, epsilon):
    rate, total = setting(benchmark)
    sigma = calibrate_noise_to_epsilon(3.0, total, rate, DELTA)
    assert opacus_epsilon("rdp", [(sigma, rate, total)], DELTA) == pytest.approx(epsilon, abs=0.01)


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_opacus_path_agrees_with_opacus(accountant):
    rate, total = 256 / 60_000, 1170
    sigma = calibrate_sigma(accountant, 3.0, DELTA, rate, total)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = get_noise_multiplier(target_epsilon=3.0, target_delta=DELTA, sample_rate=rate, steps=total,
                                      accountant=accountant, epsilon_tolerance=0.01)
    assert sigma == direct
    if accountant == "rdp":
        assert sigma == pytest.approx(0.70, abs=0.01)  # dpsgd.md §8.4
    # A schedule, accounted step by step by Opacus itself, against the ledger's per-epoch composition.
    schedule = [sigma * 1.5, sigma, sigma * 0.8]
    tracker = RDPAccountant() if accountant == "rdp" else PRVAccountant()
    ledger = PrivacyLedger(rate, DELTA)
    for epoch, multiplier in enumerate(schedule, start=1):
        for _ in range(234):
            tracker.step(noise_multiplier=multiplier, sample_rate=rate)
        spent = 234 * epoch / sum(234 / s**2 for s in schedule[:epoch])
        assert ledger.report(234 * epoch, math.sqrt(spent)) == pytest.approx(multiplier, rel=1e-9)
    assert ledger.epsilon(accountant) == pytest.approx(tracker.get_epsilon(delta=DELTA), rel=1e-6)


def test_ledger_constant_reports_and_budget():
    rate, total = 256 / 60_000, 1170
    sigma = calibrate_sigma("rdp", 3.0, DELTA, rate, total)
    ledger = PrivacyLedger(rate, DELTA)
    for epoch in range(1, 6):
        assert ledger.report(234 * epoch, sigma) == sigma
        ledger.check_budget("rdp", 3.0, total, epoch, 5)
    assert ledger.groups() == [(sigma, rate, total)]
    assert 2.99 <= ledger.epsilon("rdp") <= 3.0
    assert ledger.epsilon("benchmark") == compute_epsilon(total, sigma, rate, DELTA)[0]
    # Half the noise from epoch 2 on: the projection after epoch 2 is already over the budget.
    ledger = PrivacyLedger(rate, DELTA)
    ledger.report(234, sigma)
    ledger.check_budget("rdp", 3.0, total, 1, 5)
    ledger.report(468, sigma / 2)
    with pytest.raises(BudgetExceeded, match=r"after epoch 2/5 .* above the target 3.0 \(accountant rdp"):
        ledger.check_budget("rdp", 3.0, total, 2, 5)


def test_a_later_report_cannot_take_back_spend():
    ledger = PrivacyLedger(0.01, DELTA)
    ledger.report(100, 1.0)
    # Claiming 2.0 for all 200 steps would need the second 100 steps to have been noise-free: keep the report.
    assert ledger.report(200, 2.0) == 2.0
    # A drop of the report is decoded: 300/0.5² claimed, 100 + 25 accounted, so 100/(1200-125) per step.
    assert ledger.report(300, math.sqrt(300 / 1200)) == pytest.approx(math.sqrt(100 / 1075))


def test_overrides_and_protocols():
    assert list(TASK.protocols) == ["mlsbench", "corrected"]
    assert TASK.datasets == {"mnist": "mnist", "fmnist": "fmnist", "cifar10": "cifar10"}
    assert {b: (s["batch_size"], s["epochs"]) for b, s in TASK.benchmarks.items()} == {
        "mnist": (256, 5), "fmnist": (256, 5), "cifar10": (256, 30)}
    assert "audit" not in TASK.metrics
    overrides = parse_overrides(["epochs=1", "max_train_examples=600", "audit=false", "lr=0.05"])
    assert overrides == {"epochs": 1, "max_train_examples": 600, "audit": False, "lr": 0.05}
    config = resolve_config("cifar10", "corrected", {**overrides, "accountant": "prv"})
    assert (config.dataset, config.epochs, config.accountant, config.batch_size) == ("cifar10", 1, "prv", 256)
    assert resolve_config("mnist", "corrected").accountant == "rdp"
    for bad, message in [(["epoch=1"], "expected FIELD=VALUE"), (["epochs"], "expected FIELD=VALUE"),
                         (["dataset=cifar10"], "expected FIELD=VALUE"), (["epochs=1.5"], "not a valid int"),
                         (["audit=maybe"], "not a valid bool")]:
        with pytest.raises(TaskConfigError, match=message):
            parse_overrides(bad)
    for protocol, fields, message in [("mlsbench", {"accountant": "rdp"}, "does not belong to protocol mlsbench"),
                                      ("corrected", {"accountant": "benchmark"}, "expected one of rdp, prv"),
                                      ("mlsbench", {"epochs": 0}, "at least 1"),
                                      ("mlsbench", {"target_delta": 1.0}, "target_delta"),
                                      ("mlsbench", {"lr": float("nan")}, "lr must be a positive number")]:
        with pytest.raises(TaskConfigError, match=message):
            resolve_config("mnist", protocol, fields)


def test_job_resources_scale_with_the_work():
    quick = TASK.job_resources("mnist", "mlsbench", ["epochs=1"])
    full = TASK.job_resources("mnist", "mlsbench", [])
    cifar = TASK.job_resources("cifar10", "corrected", [])
    assert all(isinstance(v, int) and v > 0 for r in (quick, full, cifar) for v in r.values())
    assert quick["runtime"] < full["runtime"] < cifar["runtime"] and full["mem_mb"] < cifar["mem_mb"]
    with pytest.raises(TaskConfigError):
        TASK.job_resources("mnist", "mlsbench", ["nope=1"])


def test_task_package_import_is_torch_free():
    code = ("import sys, optrepro.tasks.dpsgd as task; task.TASK.job_resources('mnist', 'corrected', []); "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.stdout.strip() == "False"


def test_an_epoch_measured_under_noised_is_accounted_with_the_measurement():
    ledger = PrivacyLedger(0.01, 1e-5)
    assert ledger.report(100, 1.0, measured=0.98) == 1.0  # within the measurement's margin: the claim
    assert ledger.report(200, 1.0, measured=0.95) == pytest.approx(0.95 * 1.03)  # beyond it: the most it allows
    assert ledger.report(250, 1.0, measured=0.5) == pytest.approx(0.5 * 1.03)
    assert ledger.report(300, 1.0) == 1.0  # the claim is judged on its own, not against the measured epochs
    assert ledger.claimed == [1.0] * 4 and [n for _, n in ledger.epochs] == [100, 100, 50, 50]
    assert [s for s, _ in ledger.epochs] == pytest.approx([1.0, 0.95 * 1.03, 0.5 * 1.03, 1.0])
    honest = PrivacyLedger(0.01, 1e-5)
    for steps in (100, 200, 300):
        honest.report(steps, 1.0)
    assert ledger.epsilon("rdp") > honest.epsilon("rdp")
