"""What each kind of figure shows, in one place: the HTML and Markdown reports and `snakemake --report` use it.

The shared kinds are here; a task's own kinds come from its spec (TaskSpec.figures). Kept free of plotting
imports so that the workflow can read it when it parses its rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import tasks


@dataclass(frozen=True)
class Kind:
    title: str
    caption: str


KINDS = {
    "training_curves": Kind(
        "Training curves",
        "Training curves per strategy: mean over seeds (line) and ± one standard deviation over seeds (band). Each "
        "seed's curve first averages its inner runs (parity secrets × orderings); a run that stopped early keeps "
        "its last logged value."),
    "point_estimates": Kind(
        "Point estimates",
        "Mean over seeds with its 95% confidence interval (Student t; none for a single seed) per strategy and "
        "declared metric (↑/↓: higher/lower is better); small dots: single seeds; black diamond: the reference "
        "file's value."),
    "performance_profiles": Kind(
        "Performance profiles",
        "Dolan–Moré performance profiles across the task's benchmarks on each benchmark's headline metric: the "
        "fraction of benchmarks on which a strategy is within a factor τ of the best strategy."),
}


def figure_kinds() -> dict[str, Kind]:
    """Every kind of figure: the shared ones, then those of every registered task's spec."""
    return {**KINDS, **{own.kind: Kind(own.title, own.caption) for name in tasks.names()
                        for own in tasks.get(name).figures}}
