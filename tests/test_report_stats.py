"""The report's statistics on known inputs: seed statistics and Welch's test against scipy and the textbook formulas,
ranks and performance profiles against values worked out by hand."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from optrepro.report.stats import (
    check_direction,
    headline,
    mean_ranks,
    performance_ratios,
    profile,
    profile_area,
    ranks,
    seed_stats,
    welch_p,
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


def test_welch_matches_scipy_and_the_textbook_formula():
    a, b = np.array(A), np.array(B)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))  # Welch–Satterthwaite
    p = welch_p(pd.Series(A), pd.Series(B))
    assert p == pytest.approx(2 * scipy_stats.t.sf(abs(t), df))
    assert p == pytest.approx(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert p == pytest.approx(welch_p(pd.Series(B), pd.Series(A)))  # two-sided


def test_welch_needs_two_values_and_some_spread():
    assert math.isnan(welch_p(pd.Series([0.9]), pd.Series(B)))
    assert math.isnan(welch_p(pd.Series([1.0, 1.0]), pd.Series([1.0, 1.0])))


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
