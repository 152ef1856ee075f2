"""The report's statistics, each in one place: over seeds, against the reference, across benchmarks.

* `seed_stats`: mean, sample std and Student-t 95% CI of the mean over seeds;
* `compare`: a strategy against the reference strategy: a paired t-test over the seeds both ran where a seed
  fixes the same conditions for every strategy (TaskSpec.seed_fixes), else Welch's t-test, with the difference's
  95% CI (scipy); `holm`: Holm's adjustment of one family of such p-values (statsmodels; scipy has none);
  `detectable_difference`: the smallest difference such a test finds with 80% power (statsmodels);
* `ranks`, `mean_ranks`: rank per benchmark (1 = best), averaged across a task's benchmarks;
* `performance_ratios`, `profile`, `profile_area`: Dolan–Moré performance profiles as AlgoPerf scores them.

Directions ("higher" or "lower" is better) are passed in; they come from the task's spec (TaskSpec.metrics) only.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower

DIRECTIONS = ("higher", "lower")
# A difference from the reference strategy counts as significant below this Holm-adjusted p-value.
SIGNIFICANCE = 0.05
POWER = 0.8  # the power at which `detectable_difference` states what a table's seeds can find
PAIRED, WELCH = "paired t", "Welch t"
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


@dataclass(frozen=True)
class Comparison:
    """One strategy against the reference on one metric: the test, the seeds it used (pairs, or the smaller
    sample), the difference (strategy − reference) with its 95% CI, the spread the test saw (std of the per-seed
    differences, or the pooled std) and the two-sided p-value; NaN where no test could run."""
    test: str = ""
    n: int = 0
    delta: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    spread: float = math.nan
    p: float = math.nan


def numbers_by_seed(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").dropna().astype(float)


def compare(values: pd.Series, reference: pd.Series, paired: bool) -> Comparison:
    """`values`, `reference`: one metric indexed by seed. Paired on the seeds both ran when `paired` and there are
    two of them, else Welch's test on all; no test (NaN) below two values a side or with no spread."""
    a, b = numbers_by_seed(values), numbers_by_seed(reference)
    common = a.index.intersection(b.index)
    if paired and len(common) >= 2:
        a, b = a[common], b[common]
        test, n, delta = PAIRED, len(common), (a - b).mean()
        spread, run_test = (a - b).std(ddof=1), stats.ttest_rel
    elif len(a) >= 2 and len(b) >= 2:
        test, n, delta = WELCH, min(len(a), len(b)), a.mean() - b.mean()
        spread, run_test = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2), partial(stats.ttest_ind, equal_var=False)
    else:
        return Comparison()
    if spread == 0:
        return Comparison(test, n, float(delta))
    with warnings.catch_warnings():  # nearly identical samples: scipy warns of lost precision
        warnings.simplefilter("ignore", RuntimeWarning)
        result = run_test(a, b)
        interval = result.confidence_interval(0.95)
    return Comparison(test, n, float(delta), float(interval.low), float(interval.high), float(spread),
                      float(result.pvalue))


def holm(p_values: pd.Series) -> pd.Series:
    """Holm's step-down adjustment across one family of p-values (missing ones take no part and stay missing)."""
    present = p_values.dropna()
    adjusted = pd.Series(math.nan, index=p_values.index)
    if len(present):
        adjusted[present.index] = multipletests(present.to_numpy(float), alpha=SIGNIFICANCE, method="holm")[1]
    return adjusted


def detectable_difference(n: int, spread: float, test: str, alpha: float = SIGNIFICANCE) -> float:
    """The smallest true difference a two-sided `test` over `n` seeds a side (pairs) finds at level `alpha` with
    POWER, at the given spread (the std of the per-seed differences, or the pooled std); NaN below two seeds."""
    if n < 2 or not spread > 0:
        return math.nan
    if test == PAIRED:
        effect = TTestPower().solve_power(nobs=n, alpha=alpha, power=POWER, alternative="two-sided")
    else:
        effect = TTestIndPower().solve_power(nobs1=n, ratio=1.0, alpha=alpha, power=POWER, alternative="two-sided")
    return float(effect) * spread


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
