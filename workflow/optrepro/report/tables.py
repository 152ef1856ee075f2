"""The report's tables as one model (`Table`) that the HTML, Markdown and LaTeX templates all render.

Builders, one per kind of table:
* `result_table`: one benchmark, strategies × metrics, mean ± std, best marked, CI and Δ/p as notes, and what its
  seeds can detect (`power_note`);
* `statistics_table`: one benchmark, every metric × strategy with n, mean, std, CI, Δ with its CI, the test, its p
  and Holm's;
* `reference_table`: one benchmark, reproduced numbers beside the reference file's;
* `ranking_table`, `profile_table`: one task × protocol, across its benchmarks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..tasks import find
from .reproduction import conclusion_changes
from .stats import (
    DIRECTIONS,
    POWER,
    SIGNIFICANCE,
    TAU_MAX,
    detectable_difference,
    headline,
    mean_ranks,
    performance_ratios,
    profile,
    profile_area,
)

TAUS = (1.0, 1.05, 1.25, 2.0, TAU_MAX)
ARROWS = {"higher": "↑", "lower": "↓"}


@dataclass
class Cell:
    text: str
    note: str = ""  # second line in HTML and Markdown; LaTeX keeps tables to the main text
    best: bool = False
    failed: bool = False
    mark: str = ""  # `*`: differs from the reference strategy at a Holm-adjusted p < SIGNIFICANCE


@dataclass
class Row:
    cells: list[Cell]
    reference: bool = False
    warning: str = ""  # runs behind the row disagree on their provenance


@dataclass
class Table:
    name: str  # unique: tables/<name>.tex and the HTML anchor
    title: str
    caption: str
    header: list[str]
    rows: list[Row]
    numeric: list[bool] = field(default_factory=list)  # right-aligned columns

    @property
    def align(self) -> str:
        return "".join("r" if numeric else "l" for numeric in self.numeric)


def missing(value: object) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def number(value: object, signed: bool = False) -> str:
    """4 significant digits, thousands separated without decimals from 1,000 up, '—' when missing."""
    if missing(value):
        return "—"
    sign = "+" if signed else ""
    value = float(value)
    return f"{value:{sign},.0f}" if abs(value) >= 1000 else f"{value:{sign}.4g}"


def p_text(p: float) -> str:
    return "—" if missing(p) else "<0.001" if p < 0.001 else f"{p:.3f}"


def p_note(p: float) -> str:
    """`p=0.031`, `p<0.001` or `p=—`."""
    text = p_text(p)
    return f"p{text}" if text.startswith("<") else f"p={text}"


def ci_text(row: pd.Series) -> str:
    return f"[{number(row['ci95_low'])}, {number(row['ci95_high'])}]" if row["n"] >= 2 else "—"


def delta_ci_text(row: pd.Series) -> str:
    if missing(row["delta_ci_low"]):
        return "—"
    return f"[{number(row['delta_ci_low'], signed=True)}, {number(row['delta_ci_high'], signed=True)}]"


def comparison_note(row: pd.Series) -> str:
    """`Δ +0.05 [+0.01, +0.09], paired t p=0.012, Holm p=0.036` (the CI and p where a test ran)."""
    if missing(row["p_value"]):
        return f"Δ {number(row['delta'], signed=True)}, p=—"
    return (f"Δ {number(row['delta'], signed=True)} {delta_ci_text(row)}, {row['test']} {p_note(row['p_value'])}, "
            f"Holm {p_note(row['p_holm'])}")


def significant(row: pd.Series) -> bool:
    return not missing(row["p_holm"]) and row["p_holm"] < SIGNIFICANCE


def power_note(cells: pd.DataFrame) -> str:
    """What the seeds of one benchmark × protocol can detect on its headline metric: the true difference its test
    finds with POWER at the table's median spread, at SIGNIFICANCE and at Holm's strictest step ('' untested)."""
    family = cells["p_value"].notna().sum()
    tested = cells[cells["headline"].astype(bool) & cells["p_value"].notna()]
    if not len(tested):
        return ""
    test, n, spread = tested["test"].mode().iloc[0], int(tested["test_n"].median()), tested["spread"].median()
    kind = "the per-seed differences" if test == "paired t" else "the seeds"
    return (f" Power: a {test} test over {n} seeds finds a true difference in {tested['metric'].iloc[0]} of "
            f"{number(detectable_difference(n, spread, test))} with {POWER:.0%} power at α = {SIGNIFICANCE} "
            f"(this table's median std of {kind}, {number(spread)}), and of "
            f"{number(detectable_difference(n, spread, test, SIGNIFICANCE / family))} at Holm's first step "
            f"(α = {SIGNIFICANCE}/{family}); a smaller one is found with less than {POWER:.0%} power.")


def slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(str(part) for part in parts if part)).strip("-")


def metric_label(metric: str, direction: str) -> str:
    return f"{metric} {ARROWS[direction]}" if direction in ARROWS else metric


def best_strategies(metric_rows: pd.DataFrame) -> set[str]:
    """Strategies holding the best mean of one declared metric among the rankable ones; none when all that have a
    mean tie."""
    direction = metric_rows["direction"].iloc[0]
    means = metric_rows[(metric_rows["n"] > 0) & (metric_rows["excluded"].fillna("") == "")]
    if direction not in DIRECTIONS or means.empty:
        return set()
    best = means["mean"].max() if direction == "higher" else means["mean"].min()
    winners = set(means.loc[means["mean"] == best, "strategy"])
    return winners if len(winners) < len(means) else set()


def main_metrics(cells: pd.DataFrame) -> list[str]:
    """The result table's columns: the headline metric first, then the declared metrics and non-numeric ones (DP-SGD's
    audit); all when none is declared."""
    metrics = cells.drop_duplicates("metric")
    shown = metrics[metrics["direction"].isin(DIRECTIONS) | metrics["metric"].isin(cells.loc[cells["seen"] != "",
                                                                                              "metric"])]
    chosen = shown if shown["direction"].isin(DIRECTIONS).any() else metrics
    return list(chosen.sort_values("headline", ascending=False, kind="stable")["metric"])


def metric_note(task: str, metric: str) -> str:
    """What the task says a reader must know about a metric ('' when nothing, or for a task this checkout lacks)."""
    spec = find(task)
    return spec.metric_notes.get(metric, "") if spec else ""


def count_cell(row: pd.Series) -> Cell:
    failed = row["n_failed"] > 0
    return Cell(str(row["n_ok"]), note=f"+{row['n_failed']} failed" if failed else "",
                failed=failed and row["n_ok"] == 0)


def value_cell(row: pd.Series, best: bool) -> Cell:
    """mean ± std (a non-numeric metric: the values seen), with CI and the comparison with the reference as notes."""
    if row["seen"]:
        return Cell(row["seen"])
    if row["n"] == 0:
        failed = row["n_ok"] == 0 and row["n_failed"] > 0
        return Cell("FAILED" if failed else "—", failed=failed)
    text = number(row["mean"]) + (f" ± {number(row['std'])}" if row["n"] >= 2 else "")
    notes = [f"95% CI {ci_text(row)}" if row["n"] >= 2 else "n=1: no CI"]
    if row["n"] != row["n_ok"]:
        notes.insert(0, f"n={row['n']}")
    if row["reference"] and row["strategy"] != row["reference"] and not missing(row["delta"]):
        notes.append(comparison_note(row))
    return Cell(text, note=" · ".join(notes), best=best, mark="*" if significant(row) else "")


def result_table(cells: pd.DataFrame, title: str, name: str, warnings: dict[str, str]) -> Table:
    """`cells`: the summary rows of one task × protocol × benchmark × scale; `warnings`: strategy → provenance
    warning."""
    metrics = main_metrics(cells)
    directions = dict(zip(cells["metric"], cells["direction"]))
    best = {metric: best_strategies(cells[cells["metric"] == metric]) for metric in metrics}
    reference = cells["reference"].iloc[0]
    rows = []
    for strategy, strategy_cells in cells.groupby("strategy", sort=False):
        by_metric = strategy_cells.set_index("metric")
        first = strategy_cells.iloc[0]
        excluded = f"not ranked: {first['excluded']}" if first["excluded"] else ""
        notes = [excluded, first["caveat"], warnings.get(strategy, "")]
        rows.append(Row([Cell(strategy), count_cell(first),
                         *[value_cell(by_metric.loc[metric], strategy in best[metric]) for metric in metrics]],
                        reference=strategy == reference, warning="; ".join(filter(None, notes))))
    caption = "Mean ± sample std over seeds (n = ok runs); ↑/↓: higher/lower is better; bold: best mean of the column."
    ranked = cells.loc[cells["headline"].astype(bool), "metric"]
    if len(ranked):
        note = metric_note(cells["task"].iloc[0], ranked.iloc[0])
        caption += f" Ranks and profiles compare {ranked.iloc[0]}" + (f": {note}." if note else ".")
    caption += "".join(f" {metric}: {note}." for metric in metrics if metric not in set(ranked)
                       and (note := metric_note(cells["task"].iloc[0], metric)))
    if reference:
        caption += (f" *: differs from the reference strategy {reference} at p < {SIGNIFICANCE} after Holm's "
                    f"adjustment across this benchmark's {cells['p_value'].notna().sum()} comparisons; the 95% CI, "
                    "the difference with its CI and both p-values are under each value in the HTML report and in the "
                    "statistics table." + power_note(cells))
    return Table(name, title, caption, ["strategy", "n", *(metric_label(m, directions[m]) for m in metrics)], rows,
                 [False] + [True] * (1 + len(metrics)))


def statistics_table(cells: pd.DataFrame, title: str, name: str) -> Table:
    """Every metric of one benchmark (declared or not) in long form, with all the statistics."""
    reference = cells["reference"].iloc[0]
    order = {metric: i for i, metric in enumerate(dict.fromkeys(cells["metric"]))}
    rows = []
    for _, row in cells.sort_values("metric", kind="stable", key=lambda m: m.map(order)).iterrows():
        numbers = [number(row["mean"]), number(row["std"]), ci_text(row)] if not row["seen"] else [row["seen"],
                                                                                                    "—", "—"]
        rows.append(Row([Cell(metric_label(row["metric"], row["direction"])), Cell(row["strategy"]),
                         Cell(f"{row['n']}/{row['n_ok'] + row['n_failed']}"), *map(Cell, numbers),
                         Cell(number(row["delta"], signed=True)), Cell(delta_ci_text(row)),
                         Cell(row["test"] or "—"), Cell(p_text(row["p_value"])),
                         Cell(p_text(row["p_holm"]), mark="*" if significant(row) else "")]))
    spec = find(cells["task"].iloc[0])
    pairing = (f"paired over the seeds both ran (a seed fixes {spec.seed_fixes}), Welch's where no two seeds pair"
               if spec and spec.seed_fixes else "Welch's (the task's seeds do not pair across strategies)")
    caption = ("n: ok runs with a value / all runs; std: sample std; 95% CI: Student t over seeds (n ≥ 2); "
               f"Δ: against the reference strategy {reference or '(none configured)'}, with the 95% CI of its test; "
               f"test: t-test, {pairing}; p (Holm): adjusted across the {cells['p_value'].notna().sum()} p-values "
               "of this table; metrics without ↑/↓ are not declared by the task and never marked best.")
    return Table(name, title, caption, ["metric", "strategy", "n", "mean", "std", "95% CI", "Δ", "Δ 95% CI", "test",
                                        "p", "p (Holm)"], rows, [False, False] + [True] * 6 + [False, True, True])


def reference_table(comparison: pd.DataFrame, title: str, name: str) -> Table:
    """Reproduced against reference numbers for one benchmark (rows of reference.compare)."""
    rows = []
    for _, row in comparison.iterrows():
        reproduced = "—" if missing(row["mean"]) else number(row["mean"]) + (
            f" ± {number(row['std'])}" if row["n"] >= 2 else "")
        inside = {True: "yes", False: "no"}.get(row["inside_ci"], "— (n < 2)" if row["n"] == 1 else "—")
        rows.append(Row([Cell(row["strategy"]), Cell(metric_label(row["metric"], row["direction"])),
                         Cell(reproduced), Cell("0" if missing(row["n"]) else str(int(row["n"]))),
                         Cell(ci_text(row) if row["n"] >= 2 else "—"), Cell(number(row["reference_value"])),
                         Cell(row["reference_seeds"]), Cell(number(row["difference"], signed=True)),
                         Cell(inside, failed=inside == "no"), Cell(row["reference_source"])]))
    caption = ("Reproduced mean ± std over seeds beside the reference file's value (its `mean` row, else the mean "
               "of its seeds); difference = reproduced − reference; inside CI: whether the reference lies in the "
               "reproduced 95% CI.")
    return Table(name, title, caption, ["strategy", "metric", "reproduced", "n", "95% CI", "reference",
                                        "ref. seeds", "difference", "inside CI", "source"], rows,
                 [False, False, True, True, True, True, True, True, False, False])


def headline_caption(metrics: dict[str, str], directions: dict[str, str]) -> str:
    return ", ".join(f"{benchmark}: {metric_label(metric, directions[benchmark])}"
                     for benchmark, metric in metrics.items())


def ranking_table(group: pd.DataFrame, title: str, name: str) -> Table | None:
    """Rank of each strategy per benchmark on the benchmark's headline metric and the mean rank; None for fewer
    than two benchmarks or strategies."""
    means, directions, metrics = headline(group)
    if means.shape[1] < 2 or means.shape[0] < 2:
        return None
    ranked = mean_ranks(means, directions)
    reference = group["reference"].iloc[0]
    rows = [Row([Cell(strategy), *(Cell(number(ranked.at[strategy, b])) for b in metrics),
                 Cell(number(ranked.at[strategy, "mean_rank"]), best=i == 0)], reference=strategy == reference)
            for i, strategy in enumerate(ranked.index)]
    caption = (f"Rank per benchmark (1 = best; ties share the average rank; a strategy without a value ranks last) "
               f"on each benchmark's headline metric ({headline_caption(metrics, directions)}), and the mean rank.")
    return Table(name, title, caption, ["strategy", *metrics, "mean rank"], rows,
                 [False] + [True] * (len(metrics) + 1))


def profile_ratios(group: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Performance ratios (benchmarks × strategies) of one task × protocol and the caption naming what they use."""
    means, directions, metrics = headline(group)
    ratios = pd.DataFrame({b: performance_ratios(means[b], directions[b]) for b in means}).T.dropna(how="all")
    return ratios, headline_caption(metrics, directions)


def profile_table(group: pd.DataFrame, title: str, name: str) -> Table | None:
    """rho_s(tau) at a few tau and AlgoPerf's area score; None for fewer than two benchmarks or strategies."""
    ratios, used = profile_ratios(group)
    if ratios.shape[0] < 2 or ratios.shape[1] < 2:
        return None
    rho = profile(ratios, np.array(TAUS))
    area = profile_area(ratios).sort_values(ascending=False, kind="stable")
    reference = group["reference"].iloc[0]
    rows = [Row([Cell(strategy), *(Cell(number(rho.at[tau, strategy])) for tau in TAUS),
                 Cell(number(area[strategy]), best=i == 0)], reference=strategy == reference)
            for i, strategy in enumerate(area.index)]
    caption = (f"Performance profile over {len(ratios)} benchmarks (Dolan–Moré): ρ(τ) is the fraction of benchmarks "
               f"on which a strategy is within a factor τ of the best; score: the area under ρ over [1, {TAU_MAX:g}] "
               f"divided by {TAU_MAX - 1:g} (AlgoPerf), 1 = best everywhere. Headline metrics: {used}; a failed "
               "strategy counts as infinitely far.")
    return Table(name, title, caption, ["strategy", *(f"ρ({tau:g})" for tau in TAUS), "score"], rows,
                 [False] + [True] * (len(TAUS) + 1))


def reproduction_table(verdicts: pd.DataFrame, title: str, name: str) -> Table:
    """The original's numbers beside ours with a verdict, one row per reference cell (reproduction.verdicts)."""
    rows = []
    for _, row in verdicts.iterrows():
        ours = "—" if row["n"] == 0 else number(row["mean"]) + (f" ± {number(row['std'])}" if row["n"] >= 2 else "")
        interval = "—" if missing(row["low"]) else f"[{number(row['low'])}, {number(row['high'])}]"
        rows.append(Row([Cell(row["strategy"]), Cell(row["benchmark"]),
                         Cell(metric_label(row["metric"], row["direction"])), Cell(row["original"]),
                         Cell(row["original_seeds"]), Cell(ours), Cell(str(int(row["n"]))), Cell(interval),
                         Cell(row["verdict"], failed=row["verdict"] == "not reproduced"), Cell(row["why"])]))
    caption = ("The original benchmark's published values (seeds as listed, or its mean) beside our mean ± std over "
               "n ok full-scale seeds and the interval the verdict uses.")
    return Table(name, title, caption, ["strategy", "benchmark", "metric", "original", "original seeds", "ours", "n",
                                        "interval", "verdict", "why"], rows,
                 [False, False, False, True, False, True, True, True, False, False])


def protocol_table(comparison: dict, title: str, name: str) -> Table:
    """One benchmark's ranks and conclusions against the reference strategy under both protocols
    (reproduction.compare_protocols)."""
    ranks, said, metrics = comparison["ranks"], comparison["said"], comparison["metrics"]
    changed = set(conclusion_changes([comparison])["strategy"])
    rows = [Row([Cell(strategy), *(Cell(number(ranks.at[strategy, p])) for p in ranks.columns),
                 *(Cell(said.at[strategy, p], failed=strategy in changed) for p in said.columns)],
                reference=strategy == comparison["reference"]) for strategy in ranks.index]
    ranked_by = ", ".join(f"{protocol}: {metric}" for protocol, metric in metrics.items())
    caption = (f"Rank under each protocol on its own headline metric ({ranked_by}; 1 = best, ties share the average "
               "rank, a strategy that may not be ranked has none) and its comparison with the reference strategy "
               f"{comparison['reference']}; a conclusion in red differs between the protocols.")
    return Table(name, title, caption, ["strategy", *(f"rank ({p})" for p in ranks.columns),
                                        *(f"vs reference ({p})" for p in said.columns)], rows,
                 [False, True, True, False, False])


def changes_table(changes: pd.DataFrame, title: str, name: str) -> Table:
    """Every conclusion against the reference strategy that differs between the protocols."""
    rows = [Row([Cell(row["strategy"]), Cell(row["task"]), Cell(row["benchmark"]), Cell(row["mlsbench"]),
                 Cell(row["corrected"])]) for _, row in changes.iterrows()]
    caption = ("Strategies whose comparison with their task's reference strategy (headline metric, t-test at a "
               f"Holm-adjusted p < {SIGNIFICANCE}) is not the same under the benchmark's protocol (mlsbench) and the "
               "corrected one: the conclusions that do not survive the corrections.")
    return Table(name, title, caption, ["strategy", "task", "benchmark", "under mlsbench", "under corrected"], rows,
                 [False] * 5)
