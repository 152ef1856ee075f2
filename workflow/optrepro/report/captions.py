"""What each kind of figure shows, in one place: the HTML and Markdown reports and `snakemake --report` use it.

Kept free of plotting imports so that the workflow can read it when it parses its rules.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    "accuracy_vs_epsilon": Kind(
        "DP-SGD accuracy against ε",
        "Final test accuracy against the privacy budget ε: as the benchmark's own formula reports it (left) and as "
        "a standard subsampled-Gaussian RDP accountant computes it for the same noise (right). Small markers: "
        "single runs; large markers: mean over seeds; marker shape: dataset."),
    "accuracy_distribution": Kind(
        "Parity test-accuracy distribution",
        "Test accuracy of every inner run (secret × ordering, all seeds pooled) per strategy and benchmark; "
        "box: quartiles and median."),
    "step_distribution": Kind(
        "Bilevel toy step counts",
        "Empirical distribution (CDF) of the steps each start of the toy problem took, all seeds pooled; a start "
        "that missed the tolerance counts at the step budget."),
}
