"""The reproduction summary's verdicts and the mlsbench-vs-corrected comparison, on hand-made runs whose
answers are worked out by hand (intervals from the t table, τ from counted pairs)."""

import math

import pandas as pd
import pytest

from optrepro.report.reference import COLUMNS
from optrepro.report.reproduction import (
    compare_protocols,
    conclusion_changes,
    count_sentence,
    half_unit,
    prediction_interval,
    verdicts,
)
from optrepro.report.summarize import blank_missing_text, summarize

SOURCE = "hand-made"


def runs_of(task, benchmark, strategy, values, metric, protocol="mlsbench", scale="full", seeds=(42, 123, 456),
            status="ok"):
    return [{"task": task, "protocol": protocol, "benchmark": benchmark, "strategy": strategy, "seed": seed,
             "scale": scale, "full_budget": scale == "full", "status": status, metric: value}
            for seed, value in zip(seeds, values)]


def reference(rows):
    """Rows (task, benchmark, strategy, seed, metric, printed value) under mlsbench, read as read_reference does."""
    table = pd.DataFrame([(t, b, s, "mlsbench", seed, m, v, SOURCE) for t, b, s, seed, m, v in rows], columns=COLUMNS)
    return table.assign(printed=table["value"], value=pd.to_numeric(table["value"], errors="coerce"))


def verdict_of(table, strategy, metric):
    row = table[(table["strategy"] == strategy) & (table["metric"] == metric)]
    assert len(row) == 1
    return row.iloc[0]


def test_half_a_unit_of_the_printed_digit():
    assert half_unit("261.256") == pytest.approx(0.0005)
    assert half_unit("303.0") == pytest.approx(0.05)
    assert half_unit("1e-05") == pytest.approx(5e-6)
    assert half_unit("96") == pytest.approx(0.5)


def test_prediction_interval_by_hand():
    # mean 2, s = 1, n = 3: t(0.975, 2) = 4.3027 -> half-width 4.3027 * sqrt(1 + 1/3) = 4.968
    low, high = prediction_interval(pd.Series([1.0, 2.0, 3.0]))
    assert (low, high) == pytest.approx((2 - 4.968, 2 + 4.968), abs=1e-3)


def test_seed_values_inside_and_outside_the_prediction_interval():
    runs = pd.DataFrame(runs_of("dpsgd", "mnist", "standard_dpsgd", [96.0, 96.2, 96.4], "accuracy")
                        + runs_of("dpsgd", "mnist", "noise_decay", [90.0, 90.1, 90.2], "accuracy"))
    ref = reference([("dpsgd", "mnist", "standard_dpsgd", "42", "accuracy", "96.9"),  # mean 96.2, s 0.2: PI ±0.99
                     ("dpsgd", "mnist", "noise_decay", "42", "accuracy", "90.1"),
                     ("dpsgd", "mnist", "noise_decay", "123", "accuracy", "91.0")])  # PI 90.1 ± 0.50: outside
    table = verdicts(runs, ref)
    inside = verdict_of(table, "standard_dpsgd", "accuracy")
    assert inside["verdict"] == "reproduced" and inside["why"] == "inside our 95% prediction interval"
    assert (inside["low"], inside["high"]) == pytest.approx((96.2 - 0.9937, 96.2 + 0.9937), abs=1e-3)
    outside = verdict_of(table, "noise_decay", "accuracy")
    assert outside["verdict"] == "not reproduced" and outside["why"].endswith(": 91.0")
    assert count_sentence(table) == "1 of 2 baseline cells reproduced (1 not reproduced)."


def test_no_spread_is_judged_at_the_printed_precision():
    """ε is a formula of the configuration: every seed gives 3.001583; the original printed 3.0016."""
    runs = pd.DataFrame(runs_of("dpsgd", "mnist", "standard_dpsgd", [3.001583] * 3, "epsilon"))
    assert verdicts(runs, reference([("dpsgd", "mnist", "standard_dpsgd", "42", "epsilon", "3.0016")])
                    ).iloc[0]["verdict"] == "reproduced"
    assert verdicts(runs, reference([("dpsgd", "mnist", "standard_dpsgd", "42", "epsilon", "3.0017")])
                    ).iloc[0]["verdict"] == "not reproduced"


def test_the_toy_is_compared_seed_by_seed():
    runs = pd.DataFrame(runs_of("bilevel", "toy-convergence", "v_pbgd", [261.2561, 260.4574, 262.0],
                                "convergence_steps"))
    same = reference([("bilevel", "toy-convergence", "v_pbgd", "42", "convergence_steps", "261.256"),
                      ("bilevel", "toy-convergence", "v_pbgd", "123", "convergence_steps", "260.457")])
    row = verdicts(runs, same).iloc[0]
    assert row["verdict"] == "reproduced" and row["why"] == "equal at the printed precision for seed(s) 42, 123"
    # Inside any interval, but not the same number for seed 123: not reproduced.
    off = reference([("bilevel", "toy-convergence", "v_pbgd", "42", "convergence_steps", "261.256"),
                     ("bilevel", "toy-convergence", "v_pbgd", "123", "convergence_steps", "260.459")])
    row = verdicts(runs, off).iloc[0]
    assert row["verdict"] == "not reproduced" and row["why"] == "seed 123: ours 260.457"
    other_seeds = reference([("bilevel", "toy-convergence", "v_pbgd", "7", "convergence_steps", "261.256")])
    assert verdicts(runs, other_seeds).iloc[0]["verdict"] == "no data"


def test_exact_cells_compare_at_the_precision_the_original_printed():
    """The original printed six decimals: 0.96 is not 1.000000, 261.2564 is not 261.256000 (docs/reproduction.md)."""
    runs = pd.DataFrame(runs_of("bilevel", "toy-convergence", "v_pbgd", [0.96, 1.0, 1.0], "success_rate")).assign(
        convergence_steps=[261.2564, 260.457, 260.423])
    ref = reference([("bilevel", "toy-convergence", "v_pbgd", seed, metric, value)
                     for seed, steps in (("42", "261.256000"), ("123", "260.457000"), ("456", "260.423000"))
                     for metric, value in (("success_rate", "1.000000"), ("convergence_steps", steps))])
    table = verdicts(runs, ref)
    assert verdict_of(table, "v_pbgd", "success_rate")[["verdict", "why"]].tolist() == [
        "not reproduced", "seed 42: ours 0.960000"]
    assert verdict_of(table, "v_pbgd", "convergence_steps")[["verdict", "why"]].tolist() == [
        "not reproduced", "seed 42: ours 261.256400"]


def test_an_exact_cell_needs_every_seed_of_the_original():
    runs = pd.DataFrame(runs_of("bilevel", "toy-convergence", "v_pbgd", [1.0, 1.0], "success_rate", seeds=(42, 123)))
    ref = reference([("bilevel", "toy-convergence", "v_pbgd", seed, "success_rate", "1.000000")
                     for seed in ("42", "123", "456")])
    row = verdicts(runs, ref).iloc[0]
    assert row["verdict"] == "no data"
    assert row["why"] == "the original's seed(s) 456 not among our ok runs (an exact cell needs every one)"


def test_seeds_without_spread_are_judged_at_four_decimals():
    """Three DP-SGD seeds at 96.24 against the original's 96.2000: not reproduced (its two-decimal text 96.2 would
    have allowed ±0.05)."""
    runs = pd.DataFrame(runs_of("dpsgd", "mnist", "standard_dpsgd", [96.24] * 3, "accuracy"))
    row = verdicts(runs, reference([("dpsgd", "mnist", "standard_dpsgd", "42", "accuracy", "96.2000")])).iloc[0]
    assert row["verdict"] == "not reproduced"


def test_two_seeds_are_too_few_for_an_interval():
    """0.78 and 0.95: the 95% prediction interval would be [-1.01, 2.74], which contains anything."""
    runs = pd.DataFrame(runs_of("parity", "n32-k8", "default", [0.78, 0.95], "test_accuracy", seeds=(42, 123)))
    row = verdicts(runs, reference([("parity", "n32-k8", "default", "42", "test_accuracy", "0.747457")])).iloc[0]
    assert (row["verdict"], row["why"]) == ("too few seeds", "2 ok seed(s) of ours; an interval needs 3")


def test_the_originals_spread_over_its_runs_is_pooled_with_ours():
    """Three tight seeds (0.78, 0.79, 0.78) against the original's 15-run mean 0.747457 with runs' std 0.209050:
    pooled variance (6.667e-5 + 0.209050²) / (2 + 14) = 0.0027355, t(0.975, 16) = 2.1199, half-width
    2.1199 · 0.052302 · √(4/3) = 0.12803 around 0.78333: reproduced. Without the spread, our own (s = 0.00577,
    half-width 0.0287) leaves 0.7475 outside."""
    runs = pd.DataFrame(runs_of("parity", "n32-k8", "default", [0.78, 0.79, 0.78], "test_accuracy"))
    alone = [("parity", "n32-k8", "default", "42", "test_accuracy", "0.747457")]
    spread = [("parity", "n32-k8", "default", "42", "test_accuracy_std", "0.209050"),
              ("parity", "n32-k8", "default", "42", "num_runs", "15")]
    row = verdict_of(verdicts(runs, reference(alone + spread)), "default", "test_accuracy")
    assert row["verdict"] == "reproduced" and "pooled with the original's spread" in row["why"]
    assert (row["low"], row["high"]) == pytest.approx((0.78333 - 0.12803, 0.78333 + 0.12803), abs=2e-5)
    assert verdicts(runs, reference(alone)).iloc[0]["verdict"] == "not reproduced"


def test_failed_runs_of_the_original_are_shown_beside_ours():
    ours = pd.DataFrame(runs_of("parity", "n32-k8", "multi_epoch", [0.80, 0.82, 0.84], "test_accuracy")
                        + runs_of("parity", "n64-k8", "multi_epoch", [0.50, 0.51, 0.49], "test_accuracy"))
    ref = reference([("parity", "n32-k8", "multi_epoch", "42", "test_accuracy", "0.820000"),
                     ("parity", "n32-k8", "multi_epoch", "123", "test_accuracy", "failed"),
                     ("parity", "n32-k8", "multi_epoch", "456", "test_accuracy", "failed")]
                    + [("parity", "n64-k8", "multi_epoch", seed, "test_accuracy", "failed") for seed in ("42", "123")])
    table = verdicts(ours, ref).set_index("benchmark")
    some = table.loc["n32-k8"]
    assert some["verdict"] == "reproduced" and some["original"] == "0.820000, failed, failed"
    assert some["why"].endswith("; the original failed at seed(s) 123, 456 (ours: ok at 123, 456)")
    every = table.loc["n64-k8"]
    assert (every["verdict"], every["why"]) == ("original failed",
                                                "every run of the original failed; ours: 3 ok seed(s)")


def test_timings_are_never_judged():
    runs = pd.DataFrame(runs_of("bilevel", "toy-convergence", "v_pbgd", [0.4, 0.5, 0.6], "runtime_sec"))
    assert verdicts(runs, reference([("bilevel", "toy-convergence", "v_pbgd", "42", "runtime_sec", "0.7")])).empty


def test_mean_only_reference_uses_the_ci_of_the_mean():
    runs = pd.DataFrame(runs_of("parity", "n32-k8", "default", [0.70, 0.75, 0.80], "test_accuracy"))
    # mean 0.75, s 0.05: CI of the mean 0.75 ± 4.3027 * 0.05 / sqrt(3) = ± 0.1242; a PI would be ± 0.2484
    row = verdicts(runs, reference([("parity", "n32-k8", "default", "mean", "test_accuracy", "0.900")])).iloc[0]
    assert row["verdict"] == "not reproduced" and "95% CI of the mean" in row["why"]
    assert row["high"] == pytest.approx(0.8742, abs=1e-4)


def test_no_data_one_seed_scale_differs_and_undeclared_metrics():
    runs = pd.DataFrame(runs_of("parity", "n32-k8", "default", [0.7], "test_accuracy", seeds=(42,))
                        + runs_of("parity", "n50-k8", "default", [0.5, 0.5], "test_accuracy", scale="quick")
                        + runs_of("parity", "n64-k8", "default", [math.nan] * 3, "test_accuracy", status="failed"))
    ref = reference([("parity", b, "default", "42", metric, "0.5") for b in ("n32-k8", "n50-k8", "n64-k8")
                     for metric in ("test_accuracy", "num_runs")]
                    + [("parity", "n32-k8", "nowd", "42", "test_accuracy", "0.8")])
    table = verdicts(runs, ref)
    assert set(table["metric"]) == {"test_accuracy"}  # num_runs is not a metric parity declares
    by_cell = {(row.benchmark, row.strategy): (row.verdict, row.why) for row in table.itertuples()}
    assert by_cell == {("n32-k8", "default"): ("too few seeds", "1 ok seed(s) of ours; an interval needs 3"),
                       ("n50-k8", "default"): ("scale differs",
                                               "our runs are below the benchmark's own budget (scale quick)"),
                       ("n64-k8", "default"): ("no data", "no ok run"),
                       ("n32-k8", "nowd"): ("not run", "not in this configuration")}
    assert count_sentence(table) == ("0 of 3 baseline cells reproduced (1 too few seeds, 1 no data, 1 scale differs). "
                                     "1 cell of the reference has no run in this configuration.")


def protocol_runs():
    """Four strategies on one benchmark under both protocols (higher is better, reference `base`):
    mlsbench ranks a > b > base > c, corrected ranks b > a > base, and c is not private under corrected. Each
    strategy's seeds scatter in their own order, so the paired differences have a spread (a − base: ±0.01, −0.02)."""
    means = {"mlsbench": {"base": 0.50, "a": 0.80, "b": 0.70, "c": 0.40},
             "corrected": {"base": 0.50, "a": 0.52, "b": 0.70, "c": 0.40}}
    spreads = {"base": (-0.01, 0.0, 0.01), "a": (0.0, 0.01, -0.01), "b": (0.01, -0.01, 0.0), "c": (0.0, -0.01, 0.01)}
    rows = []
    for protocol, by_strategy in means.items():
        for strategy, mean in by_strategy.items():
            for seed, offset in zip((1, 2, 3), spreads[strategy]):
                row = {"task": "dpsgd", "protocol": protocol, "benchmark": "mnist", "strategy": strategy, "seed": seed,
                       "scale": "full", "status": "ok", "accuracy": mean + offset, "score": mean + offset,
                       "private": protocol == "mlsbench" or strategy != "c", "audit": "ok"}
                rows.append(row)
    return pd.DataFrame(rows)


def test_rankings_side_by_side_with_kendall_tau():
    summary = blank_missing_text(summarize(protocol_runs(), {"dpsgd": "base"}))
    [comparison] = compare_protocols(summary)
    ranks = comparison["ranks"]
    assert ranks["mlsbench"].to_dict() == {"base": 3.0, "a": 1.0, "b": 2.0, "c": 4.0}
    assert math.isnan(ranks.at["c", "corrected"])  # not private: no rank
    # Over base, a, b: (1 2 3) vs (2 1 3) by rank -> 2 concordant pairs, 1 discordant: tau = 1/3
    assert comparison["n"] == 3 and comparison["tau"] == pytest.approx(1 / 3)
    changes = conclusion_changes([comparison]).set_index("strategy")
    assert list(changes.index) == ["a", "c"]
    assert changes.at["a", "mlsbench"].startswith("better than base (Δ +0.3, Holm p=")
    assert changes.at["a", "corrected"].startswith("no significant difference from base (Δ +0.02, Holm p=")
    assert changes.at["c", "mlsbench"].startswith("worse than base")
    assert changes.at["c", "corrected"].startswith("not ranked (")


def test_no_comparison_on_both_sides_is_no_change():
    """Unranked under mlsbench (not private) and failed under corrected: neither protocol compares it."""
    runs = protocol_runs()
    runs = runs[~((runs["protocol"] == "corrected") & (runs["strategy"] == "c"))]
    failed = [{"task": "dpsgd", "protocol": "corrected", "benchmark": "mnist", "strategy": "c", "seed": seed,
               "scale": "full", "status": "failed"} for seed in (1, 2, 3)]
    mlsbench_c = (runs["protocol"] == "mlsbench") & (runs["strategy"] == "c")
    runs.loc[mlsbench_c, "private"] = False
    summary = blank_missing_text(summarize(pd.concat([runs, pd.DataFrame(failed)], ignore_index=True),
                                           {"dpsgd": "base"}))
    said = compare_protocols(summary)[0]["said"]
    assert said.at["c", "mlsbench"].startswith("not ranked (") and said.at["c", "corrected"] == "no result"
    assert list(conclusion_changes(compare_protocols(summary))["strategy"]) == ["a"]


def test_the_tables_mark_exactly_the_changed_conclusions():
    from optrepro.report.reproduction import corrections_paragraph
    from optrepro.report.tables import changes_table, protocol_table

    summary = blank_missing_text(summarize(protocol_runs(), {"dpsgd": "base"}))
    comparisons = compare_protocols(summary)
    table = protocol_table(comparisons[0], "title", "name")
    assert {row.cells[0].text for row in table.rows if row.cells[3].failed and row.cells[4].failed} == {"a", "c"}
    assert [row.cells[0].text for row in table.rows if row.reference] == ["base"]
    changes = conclusion_changes(comparisons)
    assert [row.cells[0].text for row in changes_table(changes, "title", "name").rows] == ["a", "c"]
    assert "2 of 3 comparisons with a task's reference strategy reach a different conclusion" in \
        corrections_paragraph(comparisons, changes)
