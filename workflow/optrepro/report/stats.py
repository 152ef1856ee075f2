"""The report's statistics, each in one place: over seeds, against the reference, across benchmarks.

* `seed_stats`: mean, sample std and Student-t 95% CI of the mean over seeds;
* `welch_p`: two-sided Welch t-test (unequal variances) of a strategy against the reference;
* `ranks`, `mean_ranks`: rank per benchmark (1 = best), averaged across a task's benchmarks;
* `performance_ratios`, `profile`, `profile_area`: Dolan–Moré performance profiles as AlgoPerf scores them.

Directions ("higher" or "lower" is better) are passed in; they come from the task's spec (TaskSpec.metrics) only.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

DIRECTIONS = ("higher", "lower")
# A difference from the reference strategy counts as significant below this p-value of Welch's t-test.
SIGNIFICANCE = 0.05
# AlgoPerf integrates performance profiles up to this ratio.
TAU_MAX = 4.0


def seed_stats(values: pd.Series) -> dict[str, float]:
    """Mean, sample std and Student-t 95% CI of the mean; spread and CI are NaN below two values."""
    values = pd.to_numeric(values.dropna(), errors="coerce").dropna().astype(float)
    n = len(values)
    mean = values.mean() if n else math.nan
    std = values.std(ddof=1) if n >= 2 else math.nan
    half = stats.t.ppf(0.975, n - 1) * std / math.sqrt(n) if n >= 2 else math.nan
    return {"n": n, "mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half}


def welch_p(values: pd.Series, reference: pd.Series) -> float:
    """Two-sided p-value of Welch's t-test; NaN when either side has fewer than two values or no spread."""
    a, b = (pd.to_numeric(v.dropna(), errors="coerce").dropna().to_numpy(float) for v in (values, reference))
    if len(a) < 2 or len(b) < 2:
        return math.nan
    with warnings.catch_warnings():  # identical samples: scipy warns and returns NaN, which is the answer
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"metric direction must be one of {DIRECTIONS}, got {direction!r}")
    return direction


def ranks(means: pd.Series, direction: str) -> pd.Series:
    """Rank 1 = best by the direction; ties share their average rank; a missing mean ranks last."""
    return means.rank(method="average", ascending=check_direction(direction) == "lower", na_option="bottom")


def mean_ranks(means: pd.DataFrame, directions: dict[str, str]) -> pd.DataFrame:
    """`means`: strategies × benchmarks. Returns each benchmark's ranks and their mean, best first."""
    ranked = pd.DataFrame({benchmark: ranks(means[benchmark], directions[benchmark]) for benchmark in means})
    ranked["mean_rank"] = ranked.mean(axis=1)
    return ranked.sort_values("mean_rank", kind="stable")


def performance_ratios(means: pd.Series, direction: str) -> pd.Series:
    """Each strategy's distance from the best on one benchmark, >= 1 (1 = best): value/best for lower-is-better,
    best/value for higher-is-better. Missing or non-positive values are infinitely far (a failure);
    the ratio is undefined when no value is positive, so then every ratio is NaN."""
    positive = means.where(means > 0)
    if positive.isna().all():
        return pd.Series(math.nan, index=means.index)
    ratio = positive / positive.min() if check_direction(direction) == "lower" else positive.max() / positive
    return ratio.fillna(math.inf)


def profile(ratios: pd.DataFrame, taus: np.ndarray) -> pd.DataFrame:
    """rho_s(tau): the fraction of benchmarks (rows of `ratios`, strategies as columns) with ratio <= tau."""
    ratios = ratios.dropna(how="all")
    return pd.DataFrame({strategy: [(ratios[strategy] <= tau).mean() for tau in taus] for strategy in ratios},
                        index=pd.Index(taus, name="tau"))


def profile_area(ratios: pd.DataFrame, tau_max: float = TAU_MAX) -> pd.Series:
    """AlgoPerf's score: the area under rho_s over [1, tau_max], divided by (tau_max - 1); 1 = best everywhere."""
    ratios = ratios.dropna(how="all")
    # rho_s is a step function: each benchmark contributes the stretch of [1, tau_max] at or above its ratio.
    covered = (tau_max - ratios.clip(lower=1.0, upper=tau_max)) / (tau_max - 1.0)
    return covered.mean()


def headline(group: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str], dict[str, str]]:
    """What ranks and profiles compare across one task's benchmarks (summary rows of one task × protocol): each
    benchmark's headline metric (summarize); cells that may not be ranked (`excluded`) take no part. Returns the
    means (strategies × benchmarks), each benchmark's direction and each benchmark's metric."""
    means, directions, metrics = {}, {}, {}
    rankable = group[group["excluded"].fillna("") == ""] if "excluded" in group else group
    rows = rankable[rankable["headline"].astype(bool)]
    for benchmark, metric_rows in rows.groupby("benchmark", sort=False):
        if (metric_rows["n"] > 0).any():
            means[benchmark] = metric_rows.set_index("strategy")["mean"]
            directions[benchmark], metrics[benchmark] = metric_rows["direction"].iloc[0], metric_rows["metric"].iloc[0]
    strategies = list(dict.fromkeys(rankable["strategy"]))
    return pd.DataFrame(means, index=pd.Index(strategies, name="strategy")), directions, metrics
