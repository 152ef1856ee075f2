"""Did the original's numbers reproduce, and which conclusions survive the corrections.

* `verdicts`: one row per reference cell (task, protocol, benchmark, strategy, metric the task declares): the
  original's values, ours, and a verdict by `RULE`;
* `compare_protocols`: per task × benchmark run under both protocols, each strategy's rank under each (on that
  protocol's headline metric), Kendall's τ between the two rankings, and each strategy's conclusion against
  the reference strategy (better / worse at a Holm-adjusted p < SIGNIFICANCE, summarize's test, no significant
  difference, not ranked);
* `conclusion_changes`: every strategy whose conclusion differs between the protocols.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd
from scipy import stats

from ..tasks import find
from .reference import CELL, MEAN
from .stats import DIRECTIONS, SIGNIFICANCE, ranks, seed_stats

PROTOCOLS = ("mlsbench", "corrected")
REPRODUCED, NOT_REPRODUCED, NO_DATA, SCALE_DIFFERS = "reproduced", "not reproduced", "no data", "scale differs"
TOO_FEW_SEEDS, ORIGINAL_FAILED = "too few seeds", "original failed"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, TOO_FEW_SEEDS, ORIGINAL_FAILED, NO_DATA, SCALE_DIFFERS)
NOT_RUN, THE_REFERENCE = "not run", "the reference"
MIN_SEEDS = 3  # below three seeds of ours a 95% interval is too wide to say anything (two: t(0.975, 1) = 12.7)
RULE = ("Reproduced: where the driver reproduces a seed exactly (the toy under mlsbench), our value for every seed "
        "the original reports equals its value at the precision the original printed. Elsewhere every value the "
        "original reports (its mean, where it gives only a mean) lies inside our 95% prediction interval for one "
        "more seed, mean ± t·s·√(1 + 1/n) over our n ≥ 3 seeds (for a mean: our 95% CI of the mean), widened by half "
        "a unit of the original's last printed digit; where a seed's value is a mean of runs whose spread the "
        "original printed (parity: 15 runs), s pools our seeds' spread with the original's within-seed one. Too few "
        "seeds: under three of ours. Original failed: the original has no value for the cell. No data: no ok run "
        "of ours (or, for an exact cell, not every seed of the original). Scale differs: none of our runs is at the "
        "benchmark's own budget. Only metrics the task declares are judged, timings never (docs/reproduction.md "
        "works examples).")


def half_unit(printed: str) -> float:
    """Half a unit of the last digit a value was printed with: 261.256 → 0.0005, 1.000000 → 5e-07, 15 → 0.5."""
    try:
        exponent = Decimal(str(printed).strip()).as_tuple().exponent
    except InvalidOperation:
        return 0.0
    return 0.5 * 10.0 ** exponent if isinstance(exponent, int) else 0.0


def prediction_interval(values: pd.Series, within: list[tuple[float, float]] = ()) -> tuple[float, float]:
    """Student-t 95% prediction interval for one more seed from our seed values (two or more). `within`: the
    original's (population std over its runs, number of runs) per seed, where a seed's value is the mean of runs;
    each adds its runs' estimate of a seed mean's variance, std²/(runs − 1) on runs − 1 degrees of freedom, to the
    pooled variance."""
    n, mean = len(values), values.mean()
    squares = float(((values - mean) ** 2).sum()) + sum(std ** 2 for std, _ in within)
    freedom = n - 1 + sum(runs - 1 for _, runs in within)
    half = stats.t.ppf(0.975, freedom) * math.sqrt(squares / freedom) * math.sqrt(1 + 1 / n)
    return mean - half, mean + half


NO_NUMBERS = {"n": 0, "mean": math.nan, "std": math.nan, "low": math.nan, "high": math.nan}


def checked_values(original: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """The original's values a verdict checks: its seed rows that have a value, else its `mean` row; and whether
    they are seeds."""
    held = original[original["value"].notna()]
    seeded = held[held["seed"] != MEAN]
    return (seeded, True) if len(seeded) else (held, False)


def seed_list(seeds) -> str:
    return ", ".join(str(seed) for seed in seeds)


def failed_note(original: pd.DataFrame, ours: pd.DataFrame) -> str:
    """What the original's failed seeds were for us: '; the original failed at seed(s) 123, 456 (ours: ok at 123)'."""
    failed = list(original.loc[original["value"].isna() & (original["seed"] != MEAN), "seed"])
    if not failed:
        return ""
    ok = [seed for seed in failed if int(seed) in set(ours["seed"].astype(int))]
    return (f"; the original failed at seed(s) {seed_list(failed)} "
            f"(ours: {'ok at ' + seed_list(ok) if ok else 'none of them ok'})")


def judge(ours: pd.DataFrame, metric: str, original: pd.DataFrame, exact: bool,
          within: dict[str, tuple[float, float]]) -> dict[str, object]:
    """Verdict of one cell: `ours` its ok full-budget runs, `original` its reference rows, `within` the original's
    (runs' population std, runs) by seed where its seed values are means of runs."""
    values = pd.to_numeric(ours[metric], errors="coerce").dropna() if metric in ours else pd.Series(dtype=float)
    checked, seeds = checked_values(original)
    spread = seed_stats(values)
    found = {**NO_NUMBERS, "n": spread["n"], "mean": spread["mean"], "std": spread["std"]}
    note = failed_note(original, ours)
    if checked.empty:
        return {**found, "verdict": ORIGINAL_FAILED, "why": f"every run of the original failed; ours: "
                                                            f"{len(values)} ok seed(s)"}
    if values.empty:
        return {**found, "verdict": NO_DATA,
                "why": ("no ok run" if ours.empty else f"no run printed {metric}") + note}
    if exact and seeds:
        by_seed = dict(zip(ours["seed"].astype(int), pd.to_numeric(ours[metric], errors="coerce")))
        missing = [row.seed for row in checked.itertuples() if pd.isna(by_seed.get(int(row.seed), math.nan))]
        if missing:
            return {**found, "verdict": NO_DATA,
                    "why": f"the original's seed(s) {seed_list(missing)} not among our ok runs (an exact cell needs "
                           f"every one)" + note}
        differ = [f"seed {row.seed}: ours {by_seed[int(row.seed)]:.{decimals(row.printed)}f}"
                  for row in checked.itertuples()
                  if not abs(by_seed[int(row.seed)] - row.value) <= half_unit(row.printed)]
        return {**found, "verdict": NOT_REPRODUCED if differ else REPRODUCED,
                "why": ("; ".join(differ) or f"equal at the printed precision for seed(s) "
                                             f"{seed_list(checked['seed'])}") + note}
    if len(values) < MIN_SEEDS:
        return {**found, "verdict": TOO_FEW_SEEDS,
                "why": f"{len(values)} ok seed(s) of ours; an interval needs {MIN_SEEDS}" + note}
    if seeds:
        pooled = [within[seed] for seed in checked["seed"] if seed in within]
        (low, high) = prediction_interval(values, pooled)
        kind = "95% prediction interval" + (" (pooled with the original's spread over its runs)" if pooled else "")
    else:
        low, high, kind = spread["ci95_low"], spread["ci95_high"], "95% CI of the mean"
    outside = [f"{row.printed}" for row in checked.itertuples()
               if not low - half_unit(row.printed) <= row.value <= high + half_unit(row.printed)]
    return {**found, "low": low, "high": high, "verdict": NOT_REPRODUCED if outside else REPRODUCED,
            "why": (f"outside our {kind}: {', '.join(outside)}" if outside else f"inside our {kind}") + note}


def decimals(printed: str) -> int:
    """How many decimals a value was printed with (0 for an integer or a value without a fixed-point form)."""
    try:
        exponent = Decimal(str(printed).strip()).as_tuple().exponent
    except InvalidOperation:
        return 0
    return max(0, -exponent) if isinstance(exponent, int) else 0


def within_seed_spread(reference: pd.DataFrame, cell: dict, spec) -> dict[str, tuple[float, float]]:
    """The original's (population std over its runs, runs) by seed for a metric whose seed value is a mean of runs
    (TaskSpec.run_spread); empty for another."""
    if spec is None or cell["metric"] not in spec.run_spread:
        return {}
    std_metric, runs_metric = spec.run_spread[cell["metric"]]
    same = (reference[CELL[:-1]] == pd.Series(cell)[CELL[:-1]]).all(axis=1) & reference["value"].notna()
    by_metric = {metric: dict(zip(rows["seed"], rows["value"]))
                 for metric, rows in reference[same].groupby("metric") if metric in (std_metric, runs_metric)}
    stds, runs = by_metric.get(std_metric, {}), by_metric.get(runs_metric, {})
    return {seed: (stds[seed], runs[seed]) for seed in stds if seed != MEAN and runs.get(seed, 0) >= 2}


def verdicts(runs: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """One row per reference cell of a declared metric that does not measure the machine (all metrics for a task
    this checkout does not know). `runs` as runs.csv holds them (its `full_budget` column says which ran their
    benchmark's own budget); `reference` as `read_reference` gives it; one made in memory without the printed
    text is judged at the precision of its values' shortest representation."""
    if "printed" not in reference:
        reference = reference.assign(printed=[repr(float(value)) for value in reference["value"]])
    rows = []
    for key, original in reference.groupby(CELL, sort=True):
        original = original.sort_values("seed", key=lambda seeds: pd.to_numeric(seeds, errors="coerce"))  # mean last
        cell = dict(zip(CELL, key))
        spec = find(cell["task"])
        if spec is not None and (cell["metric"] not in spec.metrics or cell["metric"] in spec.machine_dependent):
            continue
        mine = runs[(runs[CELL[:-1]] == pd.Series(cell)[CELL[:-1]]).all(axis=1)] if len(runs) else runs
        full = mine[mine["full_budget"].eq(True) & (mine["status"] == "ok")]
        exact = spec is not None and (cell["benchmark"], cell["protocol"]) in spec.exact_per_seed
        if mine.empty:
            result = {**NO_NUMBERS, "verdict": NOT_RUN, "why": "not in this configuration"}
        elif not mine["full_budget"].eq(True).any():
            result = {**NO_NUMBERS, "verdict": SCALE_DIFFERS,
                      "why": f"our runs are below the benchmark's own budget (scale "
                             f"{', '.join(sorted(set(mine['scale'].astype(str))))})"}
        else:
            result = judge(full, cell["metric"], original, exact, within_seed_spread(reference, cell, spec))
        shown = original[original["seed"] != MEAN] if (original["seed"] != MEAN).any() else original
        rows.append({**cell, "original": ", ".join(shown["printed"]),
                     "original_seeds": seed_list(shown["seed"]),
                     "direction": spec.metrics[cell["metric"]] if spec else "", **result})
    return pd.DataFrame(rows, columns=CELL + ["original", "original_seeds", "direction", *NO_NUMBERS, "verdict",
                                              "why"])


def count_sentence(table: pd.DataFrame) -> str:
    """`k of n baseline cells reproduced` with the other verdicts counted, and the reference's cells this
    configuration has no run of (which the summary's tables leave out)."""
    counts = table["verdict"].value_counts()
    others = [f"{counts[v]} {v}" for v in VERDICTS[1:] if counts.get(v, 0)]
    judged = len(table) - counts.get(NOT_RUN, 0)
    left = counts.get(NOT_RUN, 0)
    unrun = (f" {left} {'cell' if left == 1 else 'cells'} of the reference {'has' if left == 1 else 'have'} no run "
             "in this configuration." if left else "")
    return (f"{counts.get(REPRODUCED, 0)} of {judged} baseline cells reproduced"
            + (f" ({', '.join(others)})" if others else "") + "." + unrun)


def conclusion(row: pd.Series | None) -> str:
    """How one strategy (not the reference) compares with the reference strategy on its protocol's headline
    metric, with the evidence: `better than v_pbgd (Δ −12.3, Holm p=0.004)`."""
    if row is None:
        return NOT_RUN
    if row["excluded"]:
        return f"not ranked ({row['excluded']})"
    if row["n"] == 0:
        return "no result"
    if pd.isna(row["p_holm"]):
        return "not compared (fewer than two seeds, or no spread)"
    evidence = f"(Δ {row['delta']:+.4g}, Holm p={row['p_holm']:.3g})"
    if row["p_holm"] >= SIGNIFICANCE:
        return f"no significant difference from {row['reference']} {evidence}"
    better = (row["delta"] > 0) == (row["direction"] == "higher")
    return f"{'better' if better else 'worse'} than {row['reference']} {evidence}"


def verdict_kind(text: str) -> str:
    """What must agree across protocols: the conclusion without its evidence, where one is drawn; not ranked, no
    result and not compared are all no comparison (a change is of sign or significance, or to or from none)."""
    kind = text.split(" (")[0]
    return "no comparison" if kind in ("not ranked", "no result", "not compared") else kind


def compare_protocols(summary: pd.DataFrame) -> list[dict]:
    """Per scale × task × benchmark run under both protocols: each strategy's rank under each protocol (its own
    headline metric; unrankable cells get none), Kendall's τ-b with its p-value over the strategies ranked under
    both, and each strategy's conclusion against the reference strategy under each."""
    rows = summary[summary["headline"].astype(bool)]
    result = []
    for (scale, task, benchmark), group in rows.groupby(["scale", "task", "benchmark"], sort=False):
        by_protocol = {p: group[group["protocol"] == p].set_index("strategy") for p in PROTOCOLS}
        if not all(len(g) for g in by_protocol.values()):
            continue
        strategies = list(dict.fromkeys([*by_protocol["mlsbench"].index, *by_protocol["corrected"].index]))
        ranked = pd.DataFrame(index=pd.Index(strategies, name="strategy"), columns=list(PROTOCOLS), dtype=float)
        said = pd.DataFrame(index=ranked.index, columns=list(PROTOCOLS), dtype=object)
        reference = group["reference"].iloc[0]
        for protocol, cells in by_protocol.items():
            rankable = cells[(cells["excluded"] == "") & (cells["n"] > 0)]
            if cells["direction"].iloc[0] in DIRECTIONS and len(rankable):
                ranked.loc[rankable.index, protocol] = ranks(rankable["mean"], cells["direction"].iloc[0])
            for strategy in strategies:
                cell = cells.loc[strategy] if strategy in cells.index else None
                said.at[strategy, protocol] = THE_REFERENCE if strategy == reference else conclusion(cell)
        both = ranked.dropna()
        tau, p = stats.kendalltau(both["mlsbench"], both["corrected"]) if len(both) >= 2 else (math.nan, math.nan)
        result.append({"scale": scale, "task": task, "benchmark": benchmark, "reference": reference,
                       "ranks": ranked, "said": said, "n": len(both), "tau": float(tau), "p": float(p),
                       "metrics": {protocol: cells["metric"].iloc[0] for protocol, cells in by_protocol.items()}})
    return result


def compared(said: pd.DataFrame) -> pd.DataFrame:
    """The conclusions of the strategies run under both protocols, the reference strategy left out."""
    return said[~said.isin([NOT_RUN, THE_REFERENCE]).any(axis=1)]


def conclusion_changes(comparisons: list[dict]) -> pd.DataFrame:
    """Every strategy run under both protocols whose comparison with the reference strategy differs between them."""
    rows = [{"scale": c["scale"], "task": c["task"], "benchmark": c["benchmark"], "strategy": strategy,
             **said.to_dict()}
            for c in comparisons for strategy, said in compared(c["said"]).iterrows()
            if verdict_kind(said["mlsbench"]) != verdict_kind(said["corrected"])]
    return pd.DataFrame(rows, columns=["scale", "task", "benchmark", "strategy", *PROTOCOLS])


def tau_text(comparison: dict) -> str:
    counted = f"{comparison['n']} {'strategy' if comparison['n'] == 1 else 'strategies'}"
    if np.isnan(comparison["tau"]):
        return f"τ undefined ({counted} ranked under both protocols)"
    return f"Kendall's τ = {comparison['tau']:.2f} (p = {comparison['p']:.3g}, {counted})"


def corrections_paragraph(comparisons: list[dict], changes: pd.DataFrame) -> str:
    """The section's opening, one sentence per benchmark and the count of changed conclusions."""
    total = sum(len(compared(c["said"])) for c in comparisons)
    parts = [f"{c['task']} {c['benchmark']}: {tau_text(c)}" for c in comparisons]
    listed = "they are listed below" if len(changes) else "every conclusion holds under both"
    return (f"Rankings under mlsbench and corrected, each on its protocol's headline metric: {'; '.join(parts)}. "
            f"{len(changes)} of {total} comparisons with a task's reference strategy reach a different "
            f"conclusion under the two protocols (better / worse at a Holm-adjusted p < {SIGNIFICANCE}, no "
            f"significant difference, or not ranked); {listed}.")
