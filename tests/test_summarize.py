"""Statistics over seeds, checked against numpy/scipy computed here independently; metric directions and headlines
from the task's declarations; undeclared and non-numeric metrics."""

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import optrepro.tasks.parity
from optrepro.report.summarize import COLUMNS, blank_missing_text, main, read_table, summarize
from optrepro.tasks import get

ACCURACY = {"default": [0.91, 0.95, 0.93], "wide": [0.97, 0.99, 0.98]}


def run(strategy, seed, status="ok", protocol="mlsbench", benchmark="n32-k8", accuracy=math.nan, error=""):
    return {"task": "parity", "protocol": protocol, "benchmark": benchmark, "strategy": strategy, "seed": seed,
            "scale": "quick", "status": status, "error": error, "test_accuracy": accuracy,
            "test_accuracy_std": accuracy / 10, "mean_steps": 1000.0 * seed}


def make_runs():
    """2 strategies × 3 seeds, one failed run of `wide`, an all-failed `broken`, one run under another protocol."""
    rows = [run(name, seed, accuracy=value) for name, values in ACCURACY.items()
            for seed, value in enumerate(values, start=1)]
    rows += [run("wide", 4, status="failed", error="boom"), run("broken", 1, status="failed", error="x"),
             run("broken", 2, status="failed", error="x"), run("default", 1, protocol="corrected", accuracy=0.5)]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def summary():
    return summarize(make_runs(), {"parity": "default"})


def cell(summary, strategy, metric="test_accuracy", protocol="mlsbench"):
    rows = summary[(summary.strategy == strategy) & (summary.metric == metric) & (summary.protocol == protocol)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_columns_and_metric_order(summary):
    assert list(summary.columns) == COLUMNS
    metrics = get("parity").metrics
    for _, rows in summary.groupby(["protocol", "strategy"]):
        assert list(rows.metric) == list(metrics)
        assert list(rows.direction) == list(metrics.values())
        assert list(rows.headline) == [True, False, False]  # parity declares no headline: its first metric


@pytest.mark.parametrize("strategy", list(ACCURACY))
def test_mean_std_ci(summary, strategy):
    values = np.array(ACCURACY[strategy])
    row = cell(summary, strategy)
    sem = values.std(ddof=1) / np.sqrt(len(values))
    low, high = stats.t.interval(0.95, df=len(values) - 1, loc=values.mean(), scale=sem)
    assert row.n == 3
    assert row["mean"] == pytest.approx(values.mean())
    assert row["std"] == pytest.approx(values.std(ddof=1))
    assert (row.ci95_low, row.ci95_high) == pytest.approx((low, high))


def test_failures_are_counted_not_averaged(summary):
    assert cell(summary, "wide").n_failed == 1 and cell(summary, "default").n_failed == 0
    broken = summary[summary.strategy == "broken"]
    assert len(broken) == 3 and (broken.n == 0).all() and (broken.n_failed == 2).all()
    assert broken[["mean", "std", "ci95_low", "ci95_high", "delta"]].isna().all().all()


def test_delta_and_paired_test_against_the_reference(summary):
    """Parity's seeds pair (TaskSpec.seed_fixes): wide's ok seeds 1-3 against default's; its failed seed 4 has no
    partner. Holm's family is the comparisons of one benchmark × protocol: here test_accuracy and
    test_accuracy_std (mean_steps is 1000·seed for both, so its differences have no spread)."""
    reference = np.mean(ACCURACY["default"])
    wide = cell(summary, "wide")
    assert wide.reference == "default" and wide.reference_mean == pytest.approx(reference)
    assert wide.delta == pytest.approx(np.mean(ACCURACY["wide"]) - reference)
    paired = stats.ttest_rel(ACCURACY["wide"], ACCURACY["default"])
    assert wide.test == "paired t" and wide.test_n == 3 and wide.p_value == pytest.approx(paired.pvalue)
    interval = paired.confidence_interval(0.95)
    assert (wide.delta_ci_low, wide.delta_ci_high) == pytest.approx((interval.low, interval.high))
    family = summary[(summary.protocol == "mlsbench") & summary.p_value.notna()]
    assert sorted(family.metric) == ["test_accuracy", "test_accuracy_std"]
    low, high = sorted(family.p_value)  # Holm for two: the smaller doubled, the larger at least that
    assert sorted(family.p_holm) == pytest.approx([min(1, 2 * low), min(1, max(2 * low, high))])
    steps = cell(summary, "wide", metric="mean_steps")
    assert steps.test == "paired t" and steps.delta == 0 and math.isnan(steps.p_value) and math.isnan(steps.p_holm)
    assert cell(summary, "default").delta == 0 and math.isnan(cell(summary, "default").p_value)
    assert math.isnan(cell(summary, "broken").p_value)


def test_a_task_whose_seeds_do_not_pair_gets_welch(monkeypatch):
    monkeypatch.setattr(optrepro.tasks.parity, "TASK", replace(get("parity"), seed_fixes=""))
    wide = cell(summarize(make_runs(), {"parity": "default"}), "wide")
    expected = stats.ttest_ind(ACCURACY["wide"], ACCURACY["default"], equal_var=False).pvalue
    assert wide.test == "Welch t" and wide.p_value == pytest.approx(expected)


def test_protocols_are_separate_cells_and_one_seed_has_no_ci(summary):
    corrected = cell(summary, "default", protocol="corrected")
    assert corrected.n == 1 and corrected["mean"] == 0.5 and math.isnan(corrected["std"])
    assert math.isnan(corrected.ci95_low) and corrected.delta == 0 and math.isnan(corrected.p_value)
    assert cell(summary, "default").n == 3


def test_undeclared_and_non_numeric_metrics_are_kept_without_a_direction():
    runs = make_runs().assign(score=lambda r: r.test_accuracy,
                              audit=lambda r: ["ok", "under-noised:0.50", "ok"] * 3 + ["ok"] * (len(r) - 9))
    summary = summarize(runs, {"parity": "default"})
    rows = summary[(summary.strategy == "default") & (summary.protocol == "mlsbench")]
    assert list(rows.metric) == [*get("parity").metrics, "score", "audit"]
    assert rows.direction.iloc[-2:].isna().all() and rows.seen.iloc[:-1].isna().all()
    audit = rows[rows.metric == "audit"].iloc[0]
    assert audit.seen == "ok ×2, under-noised:0.50 ×1" and audit.n == 3 and math.isnan(audit["mean"])
    assert math.isnan(audit.p_value) and math.isnan(audit.delta)
    assert rows[rows.metric == "score"].iloc[0]["mean"] == pytest.approx(np.mean(ACCURACY["default"]))


def test_a_declared_metric_nobody_printed_shows_only_when_no_declared_one_was():
    runs = make_runs().drop(columns=["mean_steps"])
    assert "mean_steps" not in set(summarize(runs, {}).metric)
    nothing = make_runs()[lambda r: r.strategy == "broken"].drop(columns=["test_accuracy", "test_accuracy_std",
                                                                          "mean_steps"])
    assert list(summarize(nothing, {}).metric) == list(get("parity").metrics)


def test_headline_and_directions_come_from_the_task(monkeypatch):
    spec = get("parity")
    monkeypatch.setattr(optrepro.tasks.parity, "TASK", replace(
        spec, headline={"n32-k8": "mean_steps"}, metrics={**spec.metrics, "test_accuracy": "lower"}))
    summary = summarize(make_runs(), {})
    n32 = summary[(summary.benchmark == "n32-k8") & (summary.strategy == "default") & (summary.protocol == "mlsbench")]
    assert n32.set_index("metric").headline.to_dict() == {"test_accuracy": False, "test_accuracy_std": False,
                                                           "mean_steps": True}
    assert n32.set_index("metric").direction["test_accuracy"] == "lower"


def test_no_reference_leaves_delta_empty():
    summary = summarize(make_runs(), {})
    assert summary.reference.isna().all() and summary.delta.isna().all() and summary.p_value.isna().all()


def test_cli_round_trip(tmp_path):
    runs = make_runs()
    runs.to_csv(tmp_path / "runs.csv", index=False)
    assert main(["--runs", str(tmp_path / "runs.csv"), "--out", str(tmp_path / "summary.csv"),
                 "--reference", "parity=default"]) == 0
    written = read_table(tmp_path / "summary.csv")
    pd.testing.assert_frame_equal(written, summarize(runs, {"parity": "default"}), check_dtype=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["runs.csv", "summary.csv"]  # no temp file left


def test_bilevel_corrected_ranks_hyperclean_by_the_validation_selected_accuracy():
    """Under mlsbench the original's best-on-test accuracy ranks; under corrected the evaluation chosen on
    validation loss does, in the summary, the table's first column and its caption, the ranks and profiles."""
    from optrepro.report.stats import headline
    from optrepro.report.tables import result_table

    rows = [{"task": "bilevel", "protocol": protocol, "benchmark": benchmark, "strategy": strategy, "seed": seed,
             "scale": "quick", "status": "ok", "error": "", "test_accuracy": best + seed / 100,
             "val_selected_test_accuracy": selected + seed / 100}
            for protocol in ("mlsbench", "corrected") for benchmark in ("hyperclean-linear", "hyperclean-mlp")
            for strategy, best, selected in (("v_pbgd", 90.0, 80.0), ("g_pbgd", 85.0, 88.0)) for seed in (1, 2)]
    summary = blank_missing_text(summarize(pd.DataFrame(rows), {"bilevel": "v_pbgd"}))
    for protocol, expected, winner in (("mlsbench", "test_accuracy", "v_pbgd"),
                                       ("corrected", "val_selected_test_accuracy", "g_pbgd")):
        group = summary[summary.protocol == protocol]
        means, _, metrics = headline(group)
        assert set(metrics.values()) == {expected}
        assert means.idxmax().tolist() == [winner, winner]
        cells = group[group.benchmark == "hyperclean-linear"]
        table = result_table(cells, "t", "t", {})
        assert table.header[2].startswith(expected)
        assert f"Ranks and profiles compare {expected}: " in table.caption
    caption = result_table(summary[(summary.protocol == "mlsbench") & (summary.benchmark == "hyperclean-mlp")],
                           "t", "t", {}).caption
    assert "chosen on the test set, as the original" in caption
    # every other shown metric's note too (DP-SGD's: what each ε is a statement about)
    assert "val_selected_test_accuracy: the test accuracy of the evaluation with the lowest validation loss" in caption


def test_a_run_that_is_not_private_keeps_its_numbers_but_is_never_ranked():
    from optrepro.report.stats import headline
    from optrepro.report.tables import result_table

    def dp_run(strategy, seed, accuracy, private=1, audit="ok"):
        return {"task": "dpsgd", "protocol": "mlsbench", "benchmark": "mnist", "strategy": strategy, "seed": seed,
                "scale": "quick", "status": "ok", "error": "", "score": accuracy, "accuracy": accuracy,
                "epsilon": 3.0, "epsilon_rdp": 98.0, "audit": audit, "private": private, "target_epsilon": 3.0}

    rows = [dp_run(name, seed, base + seed) for name, base in (("standard_dpsgd", 85.0), ("auto", 80.0))
            for seed in (1, 2)]
    rows += [dp_run("sneaky", seed, 95.0 + seed, private=0, audit="under-noised:0.50") for seed in (1, 2)]
    rows += [dp_run("adaptive", 1, 90.0, private=0, audit="data-dependent")]
    summary = blank_missing_text(summarize(pd.DataFrame(rows), {"dpsgd": "standard_dpsgd"}))
    sneaky = cell(summary, "sneaky", "score")
    assert sneaky["mean"] == 96.5  # its numbers stay
    assert sneaky["excluded"] == ("not private at the reported noise: the audit measured 0.50 of it "
                                  "(under-noised:0.50) (seed 1, 2)")
    assert math.isnan(sneaky["delta"]) and math.isnan(sneaky["p_value"])
    assert cell(summary, "adaptive", "score")["excluded"].startswith("not private: its noise scale depends")
    standard = cell(summary, "standard_dpsgd", "score")
    assert standard["excluded"] == "" and standard["caveat"] == (
        "ε under a standard accountant (Opacus RDP) 98.0 > target 3 (seed 1, 2)")
    means, _, _ = headline(summary)
    assert list(means.index) == ["auto", "standard_dpsgd"]  # ranks and profiles see only rankable cells
    table = result_table(summary, "t", "t", {})
    rows = {row.cells[0].text: row for row in table.rows}
    assert rows["standard_dpsgd"].cells[2].best and not rows["sneaky"].cells[2].best
    assert rows["sneaky"].warning.startswith("not ranked: not private at the reported noise")
    assert "ε under a standard accountant" in rows["standard_dpsgd"].warning


def test_a_task_this_checkout_does_not_know_is_summarised_without_declarations():
    """Results copied from another checkout: no directions, no headline preference, no judgements, no error."""
    rows = [{**run("a", seed, accuracy=0.5 + seed / 10), "task": "chess"} for seed in (1, 2)]
    summary = blank_missing_text(summarize(pd.DataFrame(rows), {}))
    assert set(summary["direction"]) == {""} and set(summary["excluded"]) == {""} and set(summary["caveat"]) == {""}
    assert cell(summary, "a")["mean"] == pytest.approx(0.65)


def test_a_run_that_found_no_sandbox_keeps_its_numbers_but_is_never_ranked():
    runs = make_runs()
    runs["sandbox"] = "bwrap"
    runs.loc[(runs.strategy == "wide") & (runs.seed == 2), "sandbox"] = "unsandboxed"
    runs.loc[runs.strategy == "default", "sandbox"] = "none"  # the user's word: trusted, ranked
    summary = blank_missing_text(summarize(runs, {"parity": "default"}))
    wide = cell(summary, "wide")
    assert wide["excluded"].startswith("ran without bubblewrap (`sandbox: auto` could not use it; confined at most)")
    assert wide["excluded"].endswith("(seed 2)") and wide["n"] == 3  # its numbers kept
    assert cell(summary, "default")["excluded"] == ""
    assert math.isnan(wide["delta"]) and math.isnan(wide["p_value"])  # no comparison with the reference
