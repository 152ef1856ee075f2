"""The report's figures (seaborn/matplotlib), as PDF for papers and PNG for the HTML: the `figures` rule's script.

`python -m optrepro.report.figures --runs runs.csv --curves curves.csv --summary summary.csv
[--reference reference.csv] --out reports/figures`

Every figure is `<kind>--<scale>.<task>.<protocol>[.<benchmark>].{pdf,png}`
(kinds and captions: captions.figure_kinds()); `figures.json` lists them with their
titles and captions for the report. Sized for a two-column paper (6.75 in
wide, 7-9 pt text); a strategy has the same colour in every figure of its task.
Only ok runs are drawn; a group without any draws no figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..collect import IDENTITY
from ..files import atomic_directory
from ..tasks import find
from .captions import figure_kinds
from .reference import COLUMNS as REFERENCE_COLUMNS
from .reference import read_reference, reference_values
from .stats import TAU_MAX
from .summarize import blank_missing_text, read_table
from .tables import ARROWS, main_metrics, profile_ratios

WIDTH = 6.75  # inches: a two-column paper's text width
ROW_HEIGHT = 2.1
PNG_DPI = 150
MAX_POINT_PANELS = 6
INNER_RUNS = ["secret", "order", "run"]
STEP_KINDS = ("TRAIN_METRICS", "EPOCH")  # lines over steps or epochs; RUN_METRICS are per run
BENCHMARK_MARKERS = "os^Dv<>p"
THEME = {"pdf.fonttype": 42, "ps.fonttype": 42, "font.size": 8, "axes.titlesize": 8.5, "axes.labelsize": 8,
         "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 7, "legend.title_fontsize": 7.5,
         "lines.linewidth": 1.2, "savefig.bbox": "tight", "savefig.pad_inches": 0.03}


@dataclass
class Figure:
    """One figure as the report lists it."""

    name: str
    kind: str
    scale: str
    task: str
    protocol: str
    benchmark: str
    title: str
    caption: str


def describe(kind: str, scale: str, task: str, protocol: str, benchmark: str = "") -> Figure:
    subject = ".".join(part for part in (scale, task, protocol, benchmark) if part)
    where = " · ".join(part for part in (task, protocol, benchmark) if part)
    known = figure_kinds()[kind]
    return Figure(f"{kind}--{subject}", kind, scale, task, protocol, benchmark, f"{known.title}: {where}",
                  known.caption)


def palettes(runs: pd.DataFrame) -> dict[str, dict[str, tuple]]:
    """task → strategy → colour, fixed per task (strategies in name order) so every figure agrees."""
    colours = {}
    for task, names in runs.groupby("task")["strategy"]:
        names = sorted(set(names))
        palette = sns.color_palette("colorblind" if len(names) <= 10 else "husl", len(names))
        colours[task] = dict(zip(names, palette))
    return colours


def select(table: pd.DataFrame, **where: object) -> pd.DataFrame:
    """The rows whose columns equal the given values."""
    mask = np.ones(len(table), dtype=bool)
    for column, value in where.items():
        mask &= (table[column] == value).to_numpy()
    return table[mask]


def grid(panels: int, columns: int = 4, sharey: bool = False, labels: int = 0) -> tuple[plt.Figure, list[plt.Axes]]:
    """Panels in rows of `columns`; rows grow with the number of strategy `labels` on a y axis."""
    columns = min(columns, panels)
    rows = -(-panels // columns)
    height = max(ROW_HEIGHT, 0.22 * labels + 0.8)
    figure, axes = plt.subplots(rows, columns, figsize=(WIDTH, height * rows), squeeze=False, sharey=sharey)
    axes = list(axes.flat)
    for unused in axes[panels:]:
        unused.remove()
    return figure, axes[:panels]


def strategy_legend(figure: plt.Figure, colours: dict[str, tuple], strategies: list[str],
                    extra: list | None = None) -> None:
    handles = [plt.Line2D([], [], color=colours[s], marker="o", linestyle="-", markersize=4) for s in strategies]
    labels = list(strategies)
    for handle, label in extra or []:
        handles.append(handle)
        labels.append(label)
    figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(labels), 4),
                  frameon=False)


def numeric(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce")


def seed_curves(rows: pd.DataFrame, x: str) -> dict[str, pd.DataFrame]:
    """One metric's curves of each strategy: x × seeds, inner runs averaged, a run holding its last value after
    it stopped (up to the strategy's last x)."""
    inner = [column for column in INNER_RUNS if rows[column].notna().any()]
    curves = {}
    for strategy, own in rows.groupby("strategy", sort=True):
        wide = own.pivot_table(index=x, columns=["seed", *inner], values="value", aggfunc="mean").ffill()
        curves[strategy] = wide.T.groupby(level="seed").mean().T
    return curves


def curve_panels(curves: pd.DataFrame) -> list[tuple[str, str, dict[str, pd.DataFrame]]]:
    """(title, x, per-seed curves) for every metric of one benchmark that changes over steps or epochs."""
    panels = []
    for (kind, metric), rows in curves.groupby(["kind", "metric"], sort=False):
        x = next((column for column in ("step", "epoch") if rows[column].notna().all()), None)
        if x is None:
            continue
        inner = [column for column in INNER_RUNS if rows[column].notna().any()]
        if rows.groupby(["strategy", "seed", *inner], dropna=False)[x].nunique().max() < 2:
            continue  # one value per run (the toy's starts): a distribution, not a curve
        title = f"{metric} (per epoch)" if kind == "EPOCH" else metric
        panels.append((title, x, seed_curves(rows, x)))
    return panels


def training_curves(curves: pd.DataFrame, colours: dict[str, tuple]) -> plt.Figure | None:
    panels = curve_panels(curves)
    if not panels:
        return None
    figure, axes = grid(len(panels))
    strategies = sorted(set(curves["strategy"]))
    for ax, (title, x, per_strategy) in zip(axes, panels):
        for strategy, seeds in per_strategy.items():
            mean, std = seeds.mean(axis=1), seeds.std(axis=1, ddof=1)
            ax.plot(mean.index, mean, color=colours[strategy])
            ax.fill_between(mean.index, mean - std, mean + std, color=colours[strategy], alpha=0.2, linewidth=0)
        ax.set(title=title, xlabel=x)
    strategy_legend(figure, colours, strategies)
    figure.tight_layout()
    return figure


def point_estimates(cells: pd.DataFrame, runs: pd.DataFrame, reference: pd.DataFrame,
                    colours: dict[str, tuple]) -> plt.Figure | None:
    """Mean and 95% CI per strategy, one panel per declared numeric metric with values (at most 6)."""
    metrics = [m for m in main_metrics(cells) if (cells.loc[cells["metric"] == m, "n"] > 0).any()
               and not (cells.loc[cells["metric"] == m, "seen"] != "").any()][:MAX_POINT_PANELS]
    if not metrics:
        return None
    strategies = list(dict.fromkeys(cells["strategy"]))
    figure, axes = grid(len(metrics), columns=3, sharey=True, labels=len(strategies))
    positions = {strategy: i for i, strategy in enumerate(strategies)}
    for ax, metric in zip(axes, metrics):
        rows = cells[cells["metric"] == metric].set_index("strategy")
        for strategy in strategies:
            row, y, colour = rows.loc[strategy], positions[strategy], colours[strategy]
            seeds = numeric(runs.loc[runs["strategy"] == strategy, metric]) if metric in runs else pd.Series()
            ax.scatter(seeds, np.full(len(seeds), y + 0.18), s=6, color=colour, alpha=0.6, linewidths=0)
            if row["n"] >= 2:
                ax.errorbar(row["mean"], y, xerr=[[row["mean"] - row["ci95_low"]], [row["ci95_high"] - row["mean"]]],
                            fmt="o", color=colour, markersize=4, capsize=2)
            elif row["n"] == 1:
                ax.plot(row["mean"], y, "o", color=colour, markersize=4, markerfacecolor="white")
        marks = reference[reference["metric"] == metric]
        ax.scatter(marks["reference_value"], marks["strategy"].map(positions), marker="D", s=14,
                   color="black", zorder=3)
        direction = rows["direction"].iloc[0]
        ax.set_title(f"{metric} {ARROWS[direction]}" if direction in ARROWS else metric)
        ax.set_yticks(range(len(strategies)), strategies)
        ax.set_ylim(len(strategies) - 0.5, -0.5)
    figure.tight_layout()
    return figure


def profiles(group: pd.DataFrame, colours: dict[str, tuple]) -> plt.Figure | None:
    ratios, used = profile_ratios(group)
    if ratios.shape[0] < 2 or ratios.shape[1] < 2:
        return None
    figure, ax = plt.subplots(figsize=(WIDTH / 2, ROW_HEIGHT * 1.2))
    taus = np.linspace(1.0, TAU_MAX, 601)
    for strategy in ratios.columns:
        rho = [(ratios[strategy] <= tau).mean() for tau in taus]
        ax.step(taus, rho, where="post", color=colours[strategy], label=strategy)
    ax.set(xlabel="τ (ratio to the best)", ylabel="fraction of benchmarks", ylim=(-0.03, 1.03), xlim=(1, TAU_MAX))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    figure.tight_layout()
    return figure


# The task-specific figures each task's spec names (TaskSpec.figures): draw(runs, curves, colours) of one task,
# scale and protocol.


def accuracy_vs_epsilon(runs: pd.DataFrame, curves: pd.DataFrame, colours: dict[str, tuple]) -> plt.Figure | None:
    """DP-SGD: final accuracy against ε by the benchmark's formula and by the standard accountant."""
    accuracy, epsilons = "accuracy", ("epsilon", "epsilon_rdp")
    epsilons = [eps for eps in epsilons if eps in runs and numeric(runs[eps]).notna().any()]
    if accuracy not in runs or not epsilons or numeric(runs[accuracy]).isna().all():
        return None
    figure, axes = grid(len(epsilons), columns=2)
    benchmarks = sorted(set(runs["benchmark"]))
    markers = dict(zip(benchmarks, BENCHMARK_MARKERS))
    for ax, eps in zip(axes, epsilons):
        data = runs.assign(x=numeric(runs[eps]), y=numeric(runs[accuracy])).dropna(subset=["x", "y"])
        for (strategy, benchmark), group in data.groupby(["strategy", "benchmark"]):
            style = {"color": colours[strategy], "marker": markers[benchmark]}
            ax.scatter(group["x"], group["y"], s=8, alpha=0.5, linewidths=0, **style)
            ax.scatter(group["x"].mean(), group["y"].mean(), s=36, edgecolors="black", linewidths=0.5, **style)
        positive = data["x"][data["x"] > 0]
        if len(positive) and positive.max() / positive.min() > 20:
            ax.set_xscale("log")
        ax.set(xlabel="ε (benchmark formula)" if eps == "epsilon" else "ε (standard RDP accountant)",
               ylabel=f"{accuracy} (%)", title=eps)
    extra = [(plt.Line2D([], [], color="0.3", marker=markers[b], linestyle=""), b) for b in benchmarks]
    strategy_legend(figure, colours, sorted(set(runs["strategy"])), extra)
    figure.tight_layout()
    return figure


def accuracy_distribution(runs: pd.DataFrame, curves: pd.DataFrame, colours: dict[str, tuple]) -> plt.Figure | None:
    """Parity: the test accuracy of every inner run (RUN_METRICS lines)."""
    points = select(curves, kind="RUN_METRICS", metric="test_accuracy")
    if points.empty:
        return None
    benchmarks = list(dict.fromkeys(points["benchmark"]))
    strategies = sorted(set(points["strategy"]))
    figure, axes = grid(len(benchmarks), columns=3, sharey=True, labels=len(strategies))
    for ax, benchmark in zip(axes, benchmarks):
        data = points[points["benchmark"] == benchmark]
        sns.stripplot(data=data, x="value", y="strategy", order=strategies, hue="strategy", palette=colours,
                      size=2.5, alpha=0.6, jitter=0.25, legend=False, ax=ax)
        grey = {"color": "0.35", "linewidth": 0.7}
        ax.boxplot([data.loc[data["strategy"] == s, "value"].dropna() for s in strategies], positions=range(
            len(strategies)), orientation="horizontal", widths=0.55, showfliers=False, manage_ticks=False,
                   boxprops=grey, whiskerprops=grey, capprops=grey, medianprops=grey)
        ax.set(title=benchmark, xlabel="test accuracy of one run", ylabel="")
    figure.tight_layout()
    return figure


def step_distribution(runs: pd.DataFrame, curves: pd.DataFrame, colours: dict[str, tuple]) -> plt.Figure | None:
    """Bilevel toy: the steps of every start (its TRAIN_METRICS lines, which carry `success`)."""
    starts = select(curves, benchmark="toy-convergence", metric="success")
    starts = starts[starts["step"] > 0]
    if starts.empty:
        return None
    figure, ax = plt.subplots(figsize=(WIDTH / 2, ROW_HEIGHT * 1.2))
    sns.ecdfplot(data=starts, x="step", hue="strategy", palette=colours, log_scale=True, ax=ax)
    ax.set(xlabel="steps of one start", ylabel="fraction of starts")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, title=None)
    figure.tight_layout()
    return figure


def ok_only(table: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    ok = runs.loc[runs["status"] == "ok", IDENTITY]
    return table.merge(ok, on=IDENTITY, how="inner")


def draw_all(runs: pd.DataFrame, curves: pd.DataFrame, summary: pd.DataFrame, reference: pd.DataFrame | None):
    """Yield (Figure, matplotlib figure or None) for every figure the groups of the summary call for."""
    summary = blank_missing_text(summary)
    reference = reference_values(reference if reference is not None else pd.DataFrame(columns=REFERENCE_COLUMNS))
    colours = palettes(runs)
    ok_runs = runs[runs["status"] == "ok"]
    curves = ok_only(curves, runs).assign(value=lambda c: numeric(c["value"]))
    curves = curves[np.isfinite(curves["value"])]
    steps = curves[curves["kind"].isin(STEP_KINDS)]
    for (scale, task, protocol), group in summary.groupby(["scale", "task", "protocol"], sort=False):
        where = {"scale": scale, "task": task, "protocol": protocol}
        for benchmark, cells in group.groupby("benchmark", sort=False):
            bench_curves = select(steps, **where, benchmark=benchmark)
            bench_runs = select(ok_runs, **where, benchmark=benchmark)
            marks = select(reference, task=task, protocol=protocol, benchmark=benchmark)
            yield describe("training_curves", **where, benchmark=benchmark), training_curves(bench_curves,
                                                                                             colours[task])
            yield (describe("point_estimates", **where, benchmark=benchmark),
                   point_estimates(cells, bench_runs, marks, colours[task]))
        task_runs, task_curves = select(ok_runs, **where), select(curves, **where)
        yield describe("performance_profiles", **where), profiles(group, colours[task])
        spec = find(task)
        for own in spec.figures if spec else ():
            yield describe(own.kind, **where), own.drawer()(task_runs, task_curves, colours[task])


def write_figures(runs: pd.DataFrame, curves: pd.DataFrame, summary: pd.DataFrame, reference: pd.DataFrame | None,
                  out: Path) -> list[Figure]:
    """Draw every figure into `out` (replaced as a whole) with its PDF, PNG and the figures.json manifest."""
    written = []
    with plt.rc_context(), atomic_directory(out) as staging:
        sns.set_theme(context="paper", style="whitegrid", rc=THEME)
        for info, figure in draw_all(runs, curves, summary, reference):
            if figure is None:
                continue
            for suffix, options in ((".pdf", {"metadata": {"CreationDate": None}}), (".png", {"dpi": PNG_DPI})):
                figure.savefig(staging / f"{info.name}{suffix}", **options)
            plt.close(figure)
            written.append(info)
        (staging / "figures.json").write_text(json.dumps([asdict(f) for f in written], indent=2) + "\n")
    return written


def read_manifest(folder: Path) -> list[Figure]:
    return [Figure(**entry) for entry in json.loads((folder / "figures.json").read_text())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optrepro.report.figures", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="input runs.csv (optrepro.collect)")
    parser.add_argument("--curves", type=Path, required=True, help="input curves.csv (optrepro.collect)")
    parser.add_argument("--summary", type=Path, required=True, help="input summary.csv (optrepro.report.summarize)")
    parser.add_argument("--reference", type=Path, help="reference CSV (optrepro.report.reference)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (replaced)")
    args = parser.parse_args(argv)
    reference = read_reference(args.reference) if args.reference else None
    written = write_figures(read_table(args.runs), read_table(args.curves), read_table(args.summary), reference,
                            args.out)
    print(f"wrote {len(written)} figures to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
