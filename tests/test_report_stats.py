"""The report's statistics on known inputs: seed statistics and the paired and Welch tests against the textbook
formulas, Holm's adjustment and the power figure against values worked out by hand or from the noncentral t
distribution, ranks and performance profiles against values worked out by hand."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from optrepro.report.stats import (
    PAIRED,
    POWER,
    WELCH,
    check_direction,
    compare,
    detectable_difference,
    headline,
    holm,
    mean_ranks,
    performance_ratios,
    profile,
    profile_area,
    ranks,
    seed_stats,
)

A = [0.91, 0.95, 0.93, 0.97]
B = [0.80, 0.86, 0.78]


def test_seed_stats_match_scipy():
    values = np.array(A)
    result = seed_stats(pd.Series(A))
    low, high = scipy_stats.t.interval(0.95, df=len(A) - 1, loc=values.mean(), scale=scipy_stats.sem(values))
    assert result["n"] == 4 and result["mean"] == pytest.approx(values.mean())
    assert result["std"] == pytest.approx(values.std(ddof=1))
    assert (result["ci95_low"], result["ci95_high"]) == pytest.approx((low, high))


@pytest.mark.parametrize("values", [[0.5], []])
def test_below_two_seeds_there_is_no_spread_or_ci(values):
    result = seed_stats(pd.Series(values, dtype=float))
    assert result["n"] == len(values)
    assert all(math.isnan(result[key]) for key in ("std", "ci95_low", "ci95_high"))


def by_seed(values, seeds=None):
    return pd.Series(values, index=seeds or range(1, len(values) + 1), dtype=float)


def test_welch_matches_the_textbook_formula():
    a, b = np.array(A), np.array(B)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))  # Welch–Satterthwaite
    half = scipy_stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    result = compare(by_seed(A), by_seed(B), paired=False)
    assert result.test == WELCH and result.n == 3
    assert result.p == pytest.approx(2 * scipy_stats.t.sf(abs(t), df))
    assert result.delta == pytest.approx(a.mean() - b.mean())
    assert (result.ci_low, result.ci_high) == pytest.approx((a.mean() - b.mean() - half, a.mean() - b.mean() + half))
    assert result.p == pytest.approx(compare(by_seed(B), by_seed(A), paired=False).p)  # two-sided


def test_paired_matches_the_textbook_formula_over_the_common_seeds():
    """Seed 4 of A has no partner in B: the paired test uses seeds 1-3 only."""
    differences = np.array(A[:3]) - np.array(B)
    n, mean, sd = 3, differences.mean(), differences.std(ddof=1)
    t = mean / (sd / math.sqrt(n))
    half = scipy_stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    result = compare(by_seed(A), by_seed(B), paired=True)
    assert result.test == PAIRED and result.n == 3 and result.spread == pytest.approx(sd)
    assert result.p == pytest.approx(2 * scipy_stats.t.sf(abs(t), n - 1))
    assert result.delta == pytest.approx(mean)
    assert (result.ci_low, result.ci_high) == pytest.approx((mean - half, mean + half))


def test_pairing_finds_a_shift_that_seed_to_seed_spread_hides():
    """Seeds that move both strategies alike: Welch sees the seed spread, the paired test only the shift."""
    reference = [0.50, 0.70, 0.90]
    strategy = [0.52, 0.72, 0.93]
    assert compare(by_seed(strategy), by_seed(reference), paired=True).p < 0.05
    assert compare(by_seed(strategy), by_seed(reference), paired=False).p > 0.5


def test_seeds_that_do_not_pair_fall_back_to_welch():
    result = compare(by_seed(A, [1, 2, 3, 4]), by_seed(B, [5, 6, 7]), paired=True)
    assert result.test == WELCH and result.p == pytest.approx(compare(by_seed(A), by_seed(B), paired=False).p)


def test_no_test_below_two_values_or_without_spread():
    assert compare(by_seed([0.9]), by_seed(B), paired=False).test == ""
    assert math.isnan(compare(by_seed([0.9]), by_seed(B), paired=False).p)
    same = compare(by_seed([1.0, 1.0]), by_seed([1.0, 1.0]), paired=False)
    assert same.test == WELCH and math.isnan(same.p) and same.delta == 0
    shifted = compare(by_seed([1.5, 2.5]), by_seed([1.0, 2.0]), paired=True)  # every difference 0.5: no spread
    assert shifted.test == PAIRED and math.isnan(shifted.p) and shifted.delta == 0.5


def test_holm_by_hand():
    """Sorted 0.01, 0.03, 0.04 of three: 0.01·3, max(0.03·2, 0.03), max(0.04·1, 0.06); a missing p stays out."""
    adjusted = holm(pd.Series([0.01, math.nan, 0.04, 0.03]))
    assert adjusted.iloc[[0, 2, 3]].tolist() == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(adjusted.iloc[1])
    assert holm(pd.Series([0.2, 0.9])).tolist() == pytest.approx([0.4, 0.9])


@pytest.mark.parametrize("test, n", [(PAIRED, 3), (PAIRED, 5), (WELCH, 3)])
def test_the_detectable_difference_has_the_stated_power(test, n):
    """At the returned difference the two-sided t-test rejects with probability POWER: the noncentral t."""
    spread = 0.02
    difference = detectable_difference(n, spread, test)
    df, noncentrality = (n - 1, difference / spread * math.sqrt(n)) if test == PAIRED else \
        (2 * n - 2, difference / spread * math.sqrt(n / 2))
    critical = scipy_stats.t.ppf(0.975, df)
    power = scipy_stats.nct.sf(critical, df, noncentrality) + scipy_stats.nct.cdf(-critical, df, noncentrality)
    assert power == pytest.approx(POWER, abs=1e-4)
    assert detectable_difference(n, spread, test, alpha=0.01) > difference  # a stricter level needs more
    assert math.isnan(detectable_difference(1, spread, test)) and math.isnan(detectable_difference(n, 0.0, test))


def test_directions_are_checked():
    assert check_direction("lower") == "lower"
    with pytest.raises(ValueError, match="direction"):
        check_direction("max")


def test_ranks_follow_the_direction_ties_share_missing_last():
    means = pd.Series({"a": 0.9, "b": 0.7, "c": 0.9, "d": math.nan})
    assert ranks(means, "higher").to_dict() == {"a": 1.5, "b": 3.0, "c": 1.5, "d": 4.0}
    assert ranks(means, "lower").to_dict() == {"a": 2.5, "b": 1.0, "c": 2.5, "d": 4.0}


def test_mean_rank_across_benchmarks():
    means = pd.DataFrame({"acc": [0.9, 0.8, 0.7], "steps": [300.0, 100.0, 200.0]}, index=["a", "b", "c"])
    ranked = mean_ranks(means, {"acc": "higher", "steps": "lower"})
    assert list(ranked.index) == ["b", "a", "c"]  # mean ranks 1.5, 2, 2.5
    assert ranked["mean_rank"].tolist() == [1.5, 2.0, 2.5]


def test_performance_ratios_by_direction():
    assert performance_ratios(pd.Series({"a": 100.0, "b": 250.0}), "lower").tolist() == [1.0, 2.5]
    higher = performance_ratios(pd.Series({"a": 0.5, "b": 1.0, "c": math.nan, "d": 0.0}), "higher")
    assert higher.tolist() == [2.0, 1.0, math.inf, math.inf]
    assert performance_ratios(pd.Series({"a": -1.0, "b": 0.0}), "lower").isna().all()


def test_profile_and_area_by_hand():
    # three benchmarks; a is best twice and 2x off once, b is best once and 1.5x and failed otherwise
    ratios = pd.DataFrame({"a": [1.0, 1.0, 2.0], "b": [1.5, math.inf, 1.0]})
    rho = profile(ratios, np.array([1.0, 1.5, 2.0, 4.0]))
    assert rho["a"].tolist() == pytest.approx([2 / 3, 2 / 3, 1, 1])
    assert rho["b"].tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3, 2 / 3])
    area = profile_area(ratios, tau_max=4.0)
    # a: (3 + 3 + 2) / 3 / 3; b: (2.5 + 0 + 3) / 3 / 3
    assert area["a"] == pytest.approx(8 / 9) and area["b"] == pytest.approx(5.5 / 9)
    taus = np.linspace(1, 4, 30001)
    assert area["a"] == pytest.approx(np.trapezoid(profile(ratios, taus)["a"], taus) / 3, abs=1e-3)


def test_headline_takes_the_marked_metric_per_benchmark():
    rows = []
    for benchmark, metric, direction in (("toy", "steps", "lower"), ("clean", "acc", "higher")):
        for strategy, mean in (("a", 1.0), ("b", 2.0)):
            rows.append({"benchmark": benchmark, "strategy": strategy, "metric": metric, "direction": direction,
                         "headline": True, "n": 3, "mean": mean})
            rows.append({"benchmark": benchmark, "strategy": strategy, "metric": "runtime", "direction": "lower",
                         "headline": False, "n": 3, "mean": 9.0})
    means, directions, metrics = headline(pd.DataFrame(rows))
    assert metrics == {"toy": "steps", "clean": "acc"} and directions == {"toy": "lower", "clean": "higher"}
    assert means.loc["b"].tolist() == [2.0, 2.0]
