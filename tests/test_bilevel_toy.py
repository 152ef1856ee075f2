"""The bilevel toy (docs/tasks/bilevel.md §3.1, §3.3, §5, §9.1, §10.1).

* configuration objects and their validation;
* the vectorised computation of all 1000 starts against the original's
  one-start-at-a-time Python loop, for the v_pbgd and g_pbgd baselines and a
  strategy that fails for a third of the starts, with the original's
  (defective) and the exact x-gradient;
* seeding, the §5.6 metrics and the §9.1 lines.

Why "equal" is not "bitwise equal". Python's `math` uses the C library;
torch has its own sin/cos/exp/log, and Python's `v ** 2` is the C library's
`pow`, which now and then differs from `v * v` in the last bit. The step map
itself is the original's formula for formula (`test_step_map_...`), so a
start's trajectory differs from the original's only by such last bits. Most
starts end bitwise equal; the rest agree to ~1e-15, except that the
projected gradient G = ‖(x − x⁺, y − y⁺)‖/α is a difference of numbers ~1e7
times larger than itself, so it carries the iterates' last bits divided by α.
A very few starts pass so close to a saddle that a last-bit difference
changes their path; there the original itself is not reproducible either:
moving its starting point by one unit in the last place changes its result
as much. The comparison allows a discrepancy only where that is shown.
"""

from __future__ import annotations

import dataclasses
import io
import math
import random
import types
from dataclasses import replace
from functools import lru_cache

import pytest
import torch

from optrepro.metrics import parse_line, parse_log
from optrepro.tasks.bilevel import toy
from optrepro.tasks.bilevel import vectorised as engine
from optrepro.tasks.bilevel.config import DEFAULT_TOY, ToyProblemConfig, ToyStrategy
from optrepro.tasks.bilevel.driver import emit_toy_final, emit_toy_run, run_toy
from optrepro.tasks.bilevel.toy import (
    ToyDivergedError,
    ToyFailure,
    ToyResult,
    ToyRun,
    run_toy_reference,
    run_toy_start,
    toy_metrics,
    toy_starting_points,
)
from optrepro.tasks.bilevel.vectorised import run_toy_vectorised

# The §10.1 toy baselines (strategy files come later; these are their get_toy_strategy() values).
V_PBGD = ToyStrategy(method="v_pbgd", gams=(10.0,), alpha0=0.1)
G_PBGD = ToyStrategy(method="g_pbgd", gams=(10.0,), alpha0=0.1)
# gamma 5 with alpha 0.04 (as ds_fast_penalty, §11.7) oscillates without converging from about a third of
# the starts; the second penalty value is never used but doubles what a failure counts (§5.4).
FAILING = ToyStrategy(method="v_pbgd", gams=(5.0, 10.0), alpha0=0.2)
FAILING_CONFIG = replace(DEFAULT_TOY, max_steps_per_gamma=2_000)  # the full 20,000 takes the reference ~10 s

CASES = [(V_PBGD, DEFAULT_TOY), (G_PBGD, DEFAULT_TOY), (FAILING, FAILING_CONFIG)]
CASE_IDS = ["v_pbgd", "g_pbgd", "failing"]

REL_TOL = 1e-12
# G's allowance for last bits of the iterates (|x|, |y| < 8, so a unit in the last place is < 2e-15), over α.
G_ULPS = 1e-14


@lru_cache(maxsize=None)
def reference(strategy: ToyStrategy, config: ToyProblemConfig, exact: bool) -> ToyResult:
    return run_toy_reference(strategy, config, 42, exact)


@lru_cache(maxsize=None)
def vectorised(strategy: ToyStrategy, config: ToyProblemConfig, exact: bool) -> ToyResult:
    return run_toy_vectorised(strategy, config, 42, exact, device="cpu")


# --------------------------------------------------------------------------- configuration


def test_toy_problem_config_defaults():
    assert DEFAULT_TOY == ToyProblemConfig()
    assert dataclasses.asdict(DEFAULT_TOY) == dict(
        x_lower=0.0, x_upper=3.0, init_x_lower=0.0, init_x_upper=3.5, init_y_lower=-5.0, init_y_upper=8.5,
        num_runs=1000, stationarity_tol=1e-5, residual_tol=5e-2, max_steps_per_gamma=20_000)
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_TOY.num_runs = 5
    DEFAULT_TOY.validate()


@pytest.mark.parametrize("overrides, message", [
    (dict(x_lower=3.5), "x_lower must not exceed x_upper."),
    (dict(init_x_lower=4.0), "init_x_lower must not exceed init_x_upper."),
    (dict(init_y_lower=9.0), "init_y_lower must not exceed init_y_upper."),
    (dict(num_runs=0), "num_runs must be positive."),
    (dict(stationarity_tol=-1e-5), "stationarity_tol must be non-negative."),
    (dict(max_steps_per_gamma=-1), "max_steps_per_gamma must be non-negative."),
    (dict(x_lower=-100.0), "x_lower must lie in [-50, 50]."),
    (dict(init_x_upper=51.0), "init_x_upper must lie in [-50, 50]."),
    (dict(init_y_upper=math.inf), "init_y_upper must be finite, got inf."),
    (dict(stationarity_tol=math.nan), "stationarity_tol must be finite, got nan."),
    (dict(num_runs=10.0), "num_runs must be an integer, got 10.0."),
    (dict(max_steps_per_gamma=True), "max_steps_per_gamma must be an integer, got True."),
    (dict(x_upper="3"), "x_upper must be a number, got '3'."),
])
def test_toy_problem_config_validation(overrides, message):
    config = replace(DEFAULT_TOY, **overrides)
    with pytest.raises(ValueError) as error:
        config.validate()
    assert str(error.value) == message
    with pytest.raises(ValueError):  # both runners check the configuration first
        run_toy_reference(V_PBGD, config)
    with pytest.raises(ValueError):
        run_toy_vectorised(V_PBGD, config)


def test_toy_problem_config_accepts_scale_overrides():
    replace(DEFAULT_TOY, num_runs=1, max_steps_per_gamma=0, x_upper=3).validate()


def test_toy_strategy_fields_have_no_defaults_and_are_frozen():
    with pytest.raises(TypeError):
        ToyStrategy()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ToyStrategy(method="v_pbgd", gams=(10.0,))  # type: ignore[call-arg]
    with pytest.raises(dataclasses.FrozenInstanceError):
        V_PBGD.alpha0 = 1.0
    assert [f.name for f in dataclasses.fields(ToyStrategy)] == ["method", "gams", "alpha0"]


@pytest.mark.parametrize("strategy, message", [
    (ToyStrategy("rhg", (10.0,), 0.1), "Unsupported toy method: rhg"),
    (ToyStrategy("V_PBGD", (), 0.0), "Unsupported toy method: V_PBGD"),  # the method is checked first
    (ToyStrategy("v_pbgd", (), 0.1), "Toy strategy must contain at least one penalty value."),
    (ToyStrategy("g_pbgd", (), -1.0), "Toy strategy must contain at least one penalty value."),
    (ToyStrategy("v_pbgd", (10.0, 0.0), 0.1), "Penalty values must be positive, got (10.0, 0.0)"),
    (ToyStrategy("g_pbgd", (-1.0,), 0.0), "Penalty values must be positive, got (-1.0,)"),
    (ToyStrategy("v_pbgd", (10.0,), 0.0), "alpha0 must be positive."),
    (ToyStrategy("v_pbgd", (10.0,), -0.1), "alpha0 must be positive."),
])
def test_toy_strategy_validation(strategy, message):
    with pytest.raises(ValueError) as error:
        strategy.validate()
    assert str(error.value) == message
    with pytest.raises(ValueError):
        run_toy_reference(strategy)
    with pytest.raises(ValueError):
        run_toy_vectorised(strategy)


def test_toy_strategy_accepts_the_baselines():
    for strategy in (V_PBGD, G_PBGD, FAILING, ToyStrategy("v_pbgd", (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0), 0.2)):
        strategy.validate()


# --------------------------------------------------------------------------- the step map


def _torch_math() -> types.SimpleNamespace:
    """`math` with torch's float64 sin/cos/exp/log (what the vectorised run computes), element by element."""
    def one(function):
        return lambda value: function(torch.tensor([value], dtype=torch.float64)).item()
    return types.SimpleNamespace(sin=one(torch.sin), cos=one(torch.cos), exp=one(torch.exp), log=one(torch.log),
                                 hypot=math.hypot)


@pytest.mark.parametrize("method", ["v_pbgd", "g_pbgd"])
@pytest.mark.parametrize("exact", [False, True], ids=["mlsbench", "corrected"])
def test_step_map_is_the_originals_formula_for_formula(monkeypatch, method, exact):
    """Given the same elementary functions, the tensor step map equals the original's functions bit for bit.

    Only Python's `v ** 2` (the C library's pow) remains, which differs from `v * v` in the last bit
    for ~0.05% of arguments; a different order or association of the operations changes >4% of the values.
    """
    rng = random.Random(0)
    points = [(rng.uniform(-0.5, 3.5), rng.uniform(-5.0, 8.5)) for _ in range(5000)]
    x = torch.tensor([p[0] for p in points], dtype=torch.float64)
    y = torch.tensor([p[1] for p in points], dtype=torch.float64)
    upper, grad_x, grad_y, _, _ = (t.tolist() for t in engine._penalized_terms(x, y, method, 10.0, exact))
    monkeypatch.setattr(toy, "math", _torch_math())
    expected = [toy.toy_penalized_gradient(px, py, method, 10.0, exact) for px, py in points]
    for index, values in ((0, upper), (2, grad_x), (3, grad_y)):
        equal = sum(e[index] == v for e, v in zip(expected, values))
        assert equal >= 0.995 * len(points), (index, equal)
        assert all(math.isclose(e[index], v, rel_tol=1e-9, abs_tol=1e-12) for e, v in zip(expected, values))


def test_toy_df_exact_differs_from_the_defective_one_only_in_the_x_component():
    for x, y in [(0.3, 1.0), (1.0, -2.0), (2.5, 4.0)]:
        defective, exact = toy.toy_df(x, y), toy.toy_df_exact(x, y)
        assert defective[1] == exact[1]
        e = math.exp(2.0 - 4.0 * x)
        # the exact one is ∂f/∂x: compare with a central difference of toy_f
        h = 1e-6
        numeric = (toy.toy_f(x + h, y) - toy.toy_f(x - h, y)) / (2 * h)
        assert math.isclose(exact[0], numeric, rel_tol=1e-7, abs_tol=1e-9)
        assert math.isclose(defective[0] - exact[0],
                            4 * e * math.cos(4 * y + 2) * (1 / (1 + e * e) - 1 / (1 + e) ** 2), rel_tol=1e-9)


# --------------------------------------------------------------------------- vectorised == reference


def _discrepancies(ref: ToyRun, vec: ToyRun, alpha: float) -> dict[str, float]:
    """What differs beyond the tolerances: name -> size (steps/success as 1.0)."""
    out = {}
    if (ref.steps, ref.success) != (vec.steps, vec.success):
        out["steps"] = 1.0
    for name in ("objective", "residual"):
        a, b = getattr(ref, name), getattr(vec, name)
        if abs(a - b) > REL_TOL * max(abs(a), abs(b)):
            out[name] = abs(a - b)
    a, b = ref.projected_grad, vec.projected_grad
    if abs(a - b) > REL_TOL * max(abs(a), abs(b)) + G_ULPS / alpha:
        out["projected_grad"] = abs(a - b)
    return out


def _original_is_as_sensitive(strategy, config, exact, point, ref: ToyRun, found: dict[str, float]) -> bool:
    """Does moving the start by one unit in the last place change the original's own result as much?"""
    x0, y0 = point
    nudged = [(math.nextafter(x0, math.inf), y0), (math.nextafter(x0, -math.inf), y0),
              (x0, math.nextafter(y0, math.inf)), (x0, math.nextafter(y0, -math.inf))]
    runs = [run_toy_start(x, y, strategy, config, exact, ref.run) for x, y in nudged]
    for name, size in found.items():
        if name == "steps":
            if all((r.steps, r.success) == (ref.steps, ref.success) for r in runs):
                return False
        elif max(abs(getattr(r, name) - getattr(ref, name)) for r in runs) < 0.01 * size:
            return False
    return True


@pytest.mark.parametrize("exact", [False, True], ids=["mlsbench", "corrected"])
@pytest.mark.parametrize("strategy, config", CASES, ids=CASE_IDS)
def test_vectorised_equals_reference_on_every_start(strategy, config, exact):
    ref, vec = reference(strategy, config, exact), vectorised(strategy, config, exact)
    assert ref.failure is None and vec.failure is None
    assert len(ref.runs) == len(vec.runs) == config.num_runs
    alpha = strategy.alpha0 / strategy.gams[0]
    points = toy_starting_points(config, 42)
    unstable = []
    for r, v in zip(ref.runs, vec.runs):
        assert r.run == v.run
        found = _discrepancies(r, v, alpha)
        if found:
            assert _original_is_as_sensitive(strategy, config, exact, points[r.run], r, found), (r, v, found)
            unstable.append(r.run)
    assert len(unstable) <= 10, unstable  # ill-conditioned starts are rare
    ref_metrics, vec_metrics = ref.metrics, vec.metrics
    if unstable:  # compare the metrics of the other starts
        ref_metrics = toy_metrics([r for r in ref.runs if r.run not in unstable], 0.0)
        vec_metrics = toy_metrics([v for v in vec.runs if v.run not in unstable], 0.0)
    for key in ("convergence_steps", "median_steps", "success_rate", "score"):
        assert ref_metrics[key] == vec_metrics[key], key
    for key in ("final_residual", "final_projected_grad"):
        assert math.isclose(ref_metrics[key], vec_metrics[key], rel_tol=1e-9)


@pytest.mark.parametrize("exact", [False, True], ids=["mlsbench", "corrected"])
def test_failures_count_every_penalty_value(exact):
    for result in (reference(FAILING, FAILING_CONFIG, exact), vectorised(FAILING, FAILING_CONFIG, exact)):
        failed = [run for run in result.runs if not run.success]
        assert 100 <= len(failed) <= 900
        assert {run.steps for run in failed} == {2 * 2_000}  # len(gams) x max_steps_per_gamma (§5.4)
        assert all(run.steps < 2_000 for run in result.runs if run.success)
        assert all(math.isfinite(run.projected_grad) and run.projected_grad > DEFAULT_TOY.stationarity_tol
                   for run in failed)


def test_baselines_converge_from_every_start():
    for strategy in (V_PBGD, G_PBGD):
        for exact in (False, True):
            result = reference(strategy, DEFAULT_TOY, exact)
            assert result.metrics["success_rate"] == 1.0
            assert all(run.projected_grad <= 1e-5 for run in result.runs)


def test_vectorised_does_not_depend_on_sync_interval_or_batch():
    config = replace(DEFAULT_TOY, num_runs=40)
    runs = run_toy_vectorised(FAILING, replace(config, max_steps_per_gamma=300), sync_every=256).runs
    assert sum(not run.success for run in runs) > 0
    for sync_every in (1, 7, 1000):
        assert run_toy_vectorised(FAILING, replace(config, max_steps_per_gamma=300), sync_every=sync_every).runs == runs
    # the first 40 of 1000 starts, computed alongside the others, are the 40 computed alone
    assert vectorised(V_PBGD, DEFAULT_TOY, False).runs[:40] == run_toy_vectorised(V_PBGD, config).runs


def test_no_iteration_leaves_the_initial_values():
    config = replace(DEFAULT_TOY, num_runs=3, max_steps_per_gamma=0)
    for result in (run_toy_reference(FAILING, config), run_toy_vectorised(FAILING, config)):
        assert [(r.steps, r.success, r.residual, r.projected_grad) for r in result.runs] == [(0, False, math.inf,
                                                                                             math.inf)] * 3
        assert all(math.isnan(r.objective) for r in result.runs)
        assert result.metrics["final_residual"] == math.inf and result.metrics["success_rate"] == 0.0


# --------------------------------------------------------------------------- vectorised == one by one, bitwise

# Every start of this one overflows ((x + y) ** 2 in toy_g) after about 510 steps.
DIVERGING = ToyStrategy("v_pbgd", (10.0,), 1.5)


@pytest.mark.parametrize("strategy, config, exact", [
    (G_PBGD, DEFAULT_TOY, False),
    (DIVERGING, replace(DEFAULT_TOY, max_steps_per_gamma=600), True),
], ids=["g_pbgd-mlsbench", "diverging-corrected"])
def test_vectorised_equals_a_plain_loop_bit_for_bit_on_all_1000_starts(strategy, config, exact):
    """The same arithmetic one start at a time gives the same step count, flags and values for every start."""
    points = toy_starting_points(config, 42)
    assert len(points) == 1000
    batched = engine.toy_outcomes_vectorised(points, strategy, config, exact)
    one_by_one = [engine.toy_outcome_one_by_one(x, y, strategy, config, exact) for x, y in points]
    assert batched == one_by_one  # dataclass equality: floats compared exactly
    if strategy is DIVERGING:
        assert all(o.error == "overflow" and 400 < o.steps < 600 for o in one_by_one)
    else:
        assert all(o.converged for o in one_by_one)


# --------------------------------------------------------------------------- where the original crashes


@pytest.mark.parametrize("strategy, config, expected", [
    # y grows by a factor ~2 each step until (x + y) ** 2 overflows in toy_g
    (ToyStrategy("v_pbgd", (10.0,), 1.5), DEFAULT_TOY,
     ToyFailure(0, 511, "OverflowError", "(34, 'Numerical result out of range')")),
    # run 0 starts at y = 2.5e153 and converges; run 1 starts beyond 1.34e154 and overflows at once
    (V_PBGD, replace(DEFAULT_TOY, init_y_upper=1e155),
     ToyFailure(1, 0, "OverflowError", "(34, 'Numerical result out of range')")),
    # one step takes y to -inf; the next evaluation's math.cos(4y + 2) raises
    (ToyStrategy("v_pbgd", (1.0,), 1e308), DEFAULT_TOY, ToyFailure(0, 1, "ValueError", "math domain error")),
    # alpha0 / gamma underflows to 0: (x - x_next) / alpha raises
    (ToyStrategy("v_pbgd", (1e300,), 1e-300), DEFAULT_TOY,
     ToyFailure(0, 0, "ZeroDivisionError", "float division by zero")),
], ids=["overflow", "overflow-run1", "domain", "zero-division"])
def test_divergence_stops_where_the_original_crashes(strategy, config, expected):
    ref = run_toy_reference(strategy, config)
    vec = run_toy_vectorised(strategy, config)
    assert ref.failure == vec.failure == expected
    assert len(ref.runs) == len(vec.runs) == expected.run
    for r, v in zip(ref.runs, vec.runs):  # torch's sqrt for the original's hypot: last bits may differ
        assert (r.steps, r.success, r.objective, r.residual) == (v.steps, v.success, v.objective, v.residual)
        assert math.isclose(r.projected_grad, v.projected_grad, rel_tol=1e-12)
    assert ref.metrics is None and vec.metrics is None
    stream = io.StringIO()
    with pytest.raises(ToyDivergedError) as error:
        run_toy(strategy, config, stream=stream)
    assert error.value.failure == expected and expected.error in str(error.value)
    assert len(stream.getvalue().splitlines()) == expected.run  # the lines the original printed before


def test_the_original_really_raises_there():
    with pytest.raises(OverflowError):
        toy.toy_g(0.5, 2e154)
    with pytest.raises(ValueError):
        toy.toy_f(0.5, -math.inf)


# --------------------------------------------------------------------------- seeding


def test_starting_points_are_the_seeded_draws():
    rng = random.Random(42)
    x0, y0 = rng.uniform(0.0, 3.5), rng.uniform(-5.0, 8.5)
    x1, y1 = rng.uniform(0.0, 3.5), rng.uniform(-5.0, 8.5)
    points = toy_starting_points(DEFAULT_TOY, 42)
    assert len(points) == 1000 and points[:2] == [(x0, y0), (x1, y1)]
    assert any(x > 3.0 for x, _ in points)  # x0 may start outside C = [0, 3]
    one_step = replace(DEFAULT_TOY, max_steps_per_gamma=1)
    first = run_toy_reference(V_PBGD, one_step, 42).runs[0]
    assert first.objective == toy.toy_f(x0, y0)  # the objective of the first step is f at the start
    assert math.isclose(run_toy_vectorised(V_PBGD, one_step, 42).runs[0].objective, first.objective, rel_tol=1e-14)
    assert reference(V_PBGD, DEFAULT_TOY, False).runs[0] == run_toy_start(x0, y0, V_PBGD)
    assert toy_starting_points(DEFAULT_TOY, 123) != points


def test_strategy_randomness_does_not_touch_the_starts():
    random.seed(0)
    a = toy_starting_points(DEFAULT_TOY, 42)
    random.random()
    assert toy_starting_points(DEFAULT_TOY, 42) == a


# --------------------------------------------------------------------------- metrics


def test_metric_formulas():
    runs = [ToyRun(0, 12, 0.5, 0.25, 1e-6, True), ToyRun(1, 40_000, 0.1, 1e16, 2.0, False),
            ToyRun(2, 3, 0.2, 1.0, 3e-6, True), ToyRun(3, 7, 0.3, -1e16, 4e-6, True)]
    metrics = toy_metrics(runs, 1.5)
    assert list(metrics) == ["convergence_steps", "median_steps", "final_residual", "final_projected_grad",
                             "success_rate", "runtime_sec", "score"]
    assert all(type(v) is float for v in metrics.values())
    assert metrics["convergence_steps"] == metrics["score"] == (12 + 40_000 + 3 + 7) / 4
    assert metrics["median_steps"] == 12.0  # sorted [3, 7, 12, 40000][4 // 2]: the upper median
    # left-to-right addition as the original's sum: ((0.25 + 1e16) + 1.0) - 1e16, not the exact 1.25
    plain = (((0.0 + 0.25) + 1e16) + 1.0 + -1e16) / 4
    assert metrics["final_residual"] == plain != math.fsum([0.25, 1e16, 1.0, -1e16]) / 4
    assert metrics["final_projected_grad"] == (1e-6 + 2.0 + 3e-6 + 4e-6) / 4
    assert metrics["success_rate"] == 0.75 and metrics["runtime_sec"] == 1.5
    assert toy_metrics(runs[:3], 0.0)["median_steps"] == 12.0  # sorted [3, 12, 40000][3 // 2]


def test_metrics_of_a_run_match_its_runs():
    result = reference(FAILING, FAILING_CONFIG, False)
    steps = sorted(run.steps for run in result.runs)
    assert result.metrics["median_steps"] == steps[500]
    assert result.metrics["success_rate"] == sum(run.success for run in result.runs) / 1000
    assert result.metrics["convergence_steps"] == sum(steps) / 1000
    assert result.metrics["runtime_sec"] > 0


# --------------------------------------------------------------------------- lines (§9.1)


def _original_train_line(run: ToyRun) -> str:
    return (f"TRAIN_METRICS run={run.run} step={run.steps} objective={run.objective:.6f} residual={run.residual:.6f} "
            f"projected_grad={run.projected_grad:.6f} success={int(run.success)}")


def _original_final_line(metrics: dict[str, float]) -> str:
    return "FINAL_METRICS " + " ".join(f"{key}={value:.6f}" for key, value in metrics.items())


def test_lines_have_the_originals_format_and_parse_back():
    runs = [*reference(FAILING, FAILING_CONFIG, False).runs[:20],
            ToyRun(20, 0, math.nan, math.inf, math.inf, False)]
    result = ToyResult(runs, toy_metrics(runs, 0.123456789))
    stream = io.StringIO()
    lines = [emit_toy_run(run, stream) for run in result.runs] + [emit_toy_final(result.metrics, stream)]
    assert stream.getvalue() == "".join(line + "\n" for line in lines)
    assert lines[:-1] == [_original_train_line(run) for run in runs]
    assert lines[-1] == _original_final_line(result.metrics)
    assert lines[-2] == "TRAIN_METRICS run=20 step=0 objective=nan residual=inf projected_grad=inf success=0"
    parsed = parse_log(stream.getvalue())
    assert [p.kind for p in parsed] == ["TRAIN_METRICS"] * len(runs) + ["FINAL_METRICS"]
    for run, line in zip(runs, parsed):
        assert list(line.fields) == ["run", "step", "objective", "residual", "projected_grad", "success"]
        assert (line.fields["run"], line.fields["step"], line.fields["success"]) == (run.run, run.steps,
                                                                                     int(run.success))
        for key, value in (("objective", run.objective), ("residual", run.residual),
                           ("projected_grad", run.projected_grad)):
            assert line.fields[key] == float(f"{value:.6f}") or (math.isnan(value) and math.isnan(line.fields[key]))
    final = parse_line(lines[-1])
    assert list(final.fields) == list(result.metrics)
    assert final.fields == {key: float(f"{value:.6f}") for key, value in result.metrics.items()}


@pytest.mark.parametrize("vectorised_run", [True, False], ids=["vectorised", "reference"])
def test_run_toy_prints_every_run_then_the_final_metrics(capsys, vectorised_run):
    config = replace(DEFAULT_TOY, num_runs=100)
    metrics = run_toy(V_PBGD, config, 42, vectorised=vectorised_run)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 101
    expected = reference(V_PBGD, DEFAULT_TOY, False).runs[:100]
    assert lines[:100] == [_original_train_line(run) for run in expected]
    assert lines[100] == _original_final_line(metrics)
    assert metrics["convergence_steps"] == sum(run.steps for run in expected) / 100
    assert metrics["runtime_sec"] > 0


def test_run_toy_raises_after_the_lines_before_a_divergence(capsys):
    with pytest.raises(ToyDivergedError):
        run_toy(V_PBGD, replace(DEFAULT_TOY, init_y_upper=1e155), 42)
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines()] == ["run=0"]
