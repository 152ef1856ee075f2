"""Did the original's numbers reproduce, and which conclusions survive the corrections.

* `verdicts`: one row per reference cell (task, protocol, benchmark, strategy, metric the task declares): the
  original's values, ours, and a verdict by `RULE`;
* `compare_protocols`: per task × benchmark run under both protocols, each strategy's rank under each (on that
  protocol's headline metric), Kendall's τ between the two rankings, and each strategy's conclusion against
  the reference strategy (better / worse at p < SIGNIFICANCE in Welch's test, no significant difference, not
  ranked);
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

REFERENCE_SCALE = "full"
PROTOCOLS = ("mlsbench", "corrected")
REPRODUCED, NOT_REPRODUCED, NO_DATA, SCALE_DIFFERS = "reproduced", "not reproduced", "no data", "scale differs"
NOT_RUN, THE_REFERENCE = "not run", "the reference"
RULE = ("Reproduced: every seed value the original reports (its mean, where it gives only a mean) lies inside "
        "our 95% prediction interval for one more seed, mean ± t(0.975, n−1)·s·√(1 + 1/n) over our n ≥ 2 seeds "
        "(for a mean: our 95% CI of the mean), widened by half a unit of the original's last printed digit; "
        "where the driver reproduces a seed exactly (the toy under mlsbench) our value for each of the original's "
        "seeds must equal its value at the printed precision. No data: the cell has no ok run (or one seed where "
        "an interval needs two). Scale differs: our runs are not at the references' full scale, so they are not "
        "compared. Only metrics the task declares are judged; the per-benchmark reference tables show the rest.")


def half_unit(printed: str) -> float:
    """Half a unit of the last digit a value was printed with: 261.256 → 0.0005, 303.0 → 0.05, 1e-05 → 5e-06."""
    try:
        exponent = Decimal(str(printed).strip()).as_tuple().exponent
    except InvalidOperation:
        return 0.0
    return 0.5 * 10.0 ** exponent if isinstance(exponent, int) else 0.0


def prediction_interval(values: pd.Series) -> tuple[float, float]:
    """Student-t 95% prediction interval for one more seed (needs two values)."""
    n, mean, std = len(values), values.mean(), values.std(ddof=1)
    half = stats.t.ppf(0.975, n - 1) * std * math.sqrt(1 + 1 / n)
    return mean - half, mean + half


NO_NUMBERS = {"n": 0, "mean": math.nan, "std": math.nan, "low": math.nan, "high": math.nan}


def checked_values(original: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """The original's values a verdict checks: its seed rows, else its `mean` row; and whether they are seeds."""
    seeded = original[original["seed"] != MEAN]
    return (seeded, True) if len(seeded) else (original, False)


def judge(ours: pd.DataFrame, metric: str, original: pd.DataFrame, exact: bool) -> dict[str, object]:
    """Verdict of one cell: `ours` its ok full-scale runs, `original` its reference rows."""
    values = pd.to_numeric(ours[metric], errors="coerce").dropna() if metric in ours else pd.Series(dtype=float)
    checked, seeds = checked_values(original)
    spread = seed_stats(values)
    found = {**NO_NUMBERS, "n": spread["n"], "mean": spread["mean"], "std": spread["std"]}
    if values.empty:
        return {**found, "verdict": NO_DATA, "why": "no ok run" if ours.empty else f"no run printed {metric}"}
    if exact and seeds:
        by_seed = dict(zip(ours["seed"].astype(int), pd.to_numeric(ours[metric], errors="coerce")))
        common = [row for row in checked.itertuples() if int(row.seed) in by_seed]
        if not common:
            return {**found, "verdict": NO_DATA, "why": "none of the original's seeds was run"}
        differ = [f"seed {row.seed}: ours {by_seed[int(row.seed)]:.6g}" for row in common
                  if not abs(by_seed[int(row.seed)] - row.value) <= half_unit(row.printed)]
        return {**found, "verdict": NOT_REPRODUCED if differ else REPRODUCED,
                "why": "; ".join(differ) or f"equal at the printed precision for seed(s) "
                                               f"{', '.join(str(row.seed) for row in common)}"}
    if len(values) < 2:
        return {**found, "verdict": NO_DATA, "why": "one seed: no interval"}
    if seeds:
        (low, high), kind = prediction_interval(values), "95% prediction interval"
    else:
        low, high, kind = spread["ci95_low"], spread["ci95_high"], "95% CI of the mean"
    outside = [f"{row.printed}" for row in checked.itertuples()
               if not low - half_unit(row.printed) <= row.value <= high + half_unit(row.printed)]
    return {**found, "low": low, "high": high, "verdict": NOT_REPRODUCED if outside else REPRODUCED,
            "why": f"outside our {kind}: {', '.join(outside)}" if outside else f"inside our {kind}"}


def verdicts(runs: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """One row per reference cell of a declared metric (all metrics for a task this checkout does not know).
    `reference` as `read_reference` gives it; one made in memory without the printed text is judged at the
    precision of its values' shortest representation."""
    if "printed" not in reference:
        reference = reference.assign(printed=[repr(float(value)) for value in reference["value"]])
    rows = []
    for key, original in reference.groupby(CELL, sort=True):
        cell = dict(zip(CELL, key))
        spec = find(cell["task"])
        if spec is not None and cell["metric"] not in spec.metrics:
            continue
        mine = runs[(runs[CELL[:-1]] == pd.Series(cell)[CELL[:-1]]).all(axis=1)] if len(runs) else runs
        full = mine[(mine["scale"] == REFERENCE_SCALE) & (mine["status"] == "ok")]
        exact = spec is not None and (cell["benchmark"], cell["protocol"]) in spec.exact_per_seed
        if mine.empty:
            result = {**NO_NUMBERS, "verdict": NO_DATA, "why": "not run"}
        elif full.empty and (mine["scale"] != REFERENCE_SCALE).all():
            result = {**NO_NUMBERS, "verdict": SCALE_DIFFERS,
                      "why": f"our runs are at scale {', '.join(sorted(set(mine['scale'])))}"}
        else:
            result = judge(full, cell["metric"], original, exact)
        shown, seeds = checked_values(original)
        rows.append({**cell, "original": ", ".join(shown["printed"]),
                     "original_seeds": ", ".join(shown["seed"]) if seeds else MEAN,
                     "direction": spec.metrics[cell["metric"]] if spec else "", **result})
    return pd.DataFrame(rows, columns=CELL + ["original", "original_seeds", "direction", *NO_NUMBERS, "verdict",
                                              "why"])


def count_sentence(table: pd.DataFrame) -> str:
    """`k of n baseline cells reproduced` with the other verdicts counted."""
    counts = table["verdict"].value_counts()
    others = [f"{counts[v]} {v}" for v in (NOT_REPRODUCED, NO_DATA, SCALE_DIFFERS) if counts.get(v, 0)]
    return (f"{counts.get(REPRODUCED, 0)} of {len(table)} baseline cells reproduced"
            + (f" ({', '.join(others)})" if others else "") + ".")


def conclusion(row: pd.Series | None) -> str:
    """How one strategy (not the reference) compares with the reference strategy on its protocol's headline
    metric, with the evidence: `better than v_pbgd (Δ −12.3, p=0.004)`."""
    if row is None:
        return NOT_RUN
    if row["excluded"]:
        return f"not ranked ({row['excluded']})"
    if row["n"] == 0:
        return "no result"
    if pd.isna(row["p_value"]):
        return "not compared (fewer than two seeds, or no spread)"
    evidence = f"(Δ {row['delta']:+.4g}, p={row['p_value']:.3g})"
    if row["p_value"] >= SIGNIFICANCE:
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
            f"conclusion under the two protocols (better / worse at p < {SIGNIFICANCE} in Welch's t-test, no "
            f"significant difference, or not ranked); {listed}.")
