"""The bilevel driver `python -m optrepro.tasks.bilevel` as the workflow runs it (bilevel.md §2, §4, §9).

* strategy contract: a function that raises, returns the wrong type or an
  object that fails `validate()` gives one `ERROR:` line naming the file, exit 2;
* scale overrides: unknown fields and bad values are rejected, caps apply;
* every shipped strategy loads among the driver's names and validates;
* real runs: the toy (1,000 lines + FINAL_METRICS, protocols differ) and a
  tiny hyper-cleaning run per method on real MNIST through DATA_ROOT.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from optrepro.metrics import parse_log
from optrepro.tasks.bilevel import config, driver
from optrepro.tasks.bilevel.config import DEFAULT_TOY, HypercleanStrategy, ToyStrategy
from optrepro.tasks.bilevel.hyperclean import CORRECTED_KEYS, FINAL_KEYS
from optrepro.tasks.bilevel.toy import run_toy_reference
from optrepro.tasks.bilevel.vectorised import run_toy_vectorised

REPO = Path(__file__).resolve().parent.parent
STRATEGIES = sorted((REPO / "strategies" / "bilevel").glob("*.py"))
TOY_KEYS = ["convergence_steps", "median_steps", "final_residual", "final_projected_grad", "success_rate",
            "runtime_sec", "score"]
TINY = ["--set", "train_size=300", "--set", "val_size=200", "--set", "test_size=300", "--set", "max_outer_itr=3",
        "--set", "max_unroll=4"]


def run_driver(*args: str, data_root: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if data_root is not None:
        env["DATA_ROOT"] = str(data_root)
    return subprocess.run([sys.executable, "-m", "optrepro.tasks.bilevel", "--device", "cpu", *args],
                          capture_output=True, text=True, env=env, timeout=1800)


def write_strategy(tmp_path: Path, toy: str, hyperclean: str = 'HypercleanStrategy(method="rhg")') -> Path:
    path = tmp_path / "strategy.py"
    path.write_text(f"def get_toy_strategy():\n    return {toy}\n\n"
                    f"def get_hyperclean_strategy(net):\n    return {hyperclean}\n")
    return path


@pytest.mark.parametrize("toy, message", [
    ('ToyStrategy(method="adam", gams=(10.0,), alpha0=0.1)', "invalid strategy: Unsupported toy method: adam"),
    ('ToyStrategy(method="v_pbgd", gams=(), alpha0=0.1)', "at least one penalty value"),
    ('ToyStrategy(method="v_pbgd", gams=(10.0, -1.0), alpha0=0.1)', "Penalty values must be positive"),
    ('ToyStrategy(method="v_pbgd", gams=(10.0,), alpha0=0.0)', "alpha0 must be positive"),
    ('ToyStrategy(method="v_pbgd", gams=(10.0,))', "get_toy_strategy raised TypeError"),
    ('{"method": "v_pbgd"}', "get_toy_strategy returned dict, expected ToyStrategy"),
])
def test_invalid_toy_strategy_is_one_error_line(tmp_path, toy, message):
    path = write_strategy(tmp_path, toy)
    result = run_driver("--benchmark", "toy-convergence", "--strategy", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"ERROR: {path}: ") and message in result.stderr


def test_invalid_hyperclean_strategy_fails_before_reading_data(tmp_path):
    path = write_strategy(tmp_path, "None", 'HypercleanStrategy(method="rhg", lr=0.1, lr_inner=0.1, outer_itr=5, '
                                             'T=3, K=4)')
    result = run_driver("--benchmark", "hyperclean-linear", "--strategy", str(path), data_root=tmp_path / "none")
    assert result.returncode == 2
    assert "get_hyperclean_strategy returned an invalid strategy: K must not exceed T." in result.stderr


@pytest.mark.parametrize("override, message", [
    ("nosuchfield=1", "expected FIELD=VALUE with FIELD one of"),
    ("max_outer_itr=many", "'many' is not a valid int"),
    ("max_outer_itr=0", "max_outer_itr must be positive"),
    ("pollute_rate=1.0", "pollute_rate must lie in [0, 1)"),
])
def test_bad_overrides_are_rejected(tmp_path, override, message):
    result = run_driver("--benchmark", "hyperclean-linear", "--strategy", str(REPO / "strategies/bilevel/rhg.py"),
                        "--set", override, data_root=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_missing_data_names_the_folder(tmp_path):
    result = run_driver("--benchmark", "hyperclean-mlp", "--strategy", str(REPO / "strategies/bilevel/g_pbgd.py"),
                        data_root=tmp_path)
    assert result.returncode == 2
    assert f"MNIST not found under '{tmp_path}/mnist'" in result.stderr


def test_budget_caps():
    rhg = HypercleanStrategy("rhg", lr=0.001, lr_inner=0.1, outer_itr=100, T=500, K=100)
    capped = config.capped_strategy(rhg, {"max_outer_itr": 7, "max_unroll": 50})
    assert (capped.outer_itr, capped.T, capped.K) == (7, 50, 50)
    assert config.capped_strategy(rhg, {}) == rhg
    pbgd = HypercleanStrategy("v_pbgd", lrx=0.1, lry=0.1, lr_inner=0.01, outer_itr=40_000)
    assert config.capped_strategy(pbgd, {"max_outer_itr": 100, "max_unroll": 5}).outer_itr == 100
    assert config.capped_strategy(pbgd, {"max_outer_itr": 10**9}).outer_itr == 40_000


@pytest.mark.parametrize("path", STRATEGIES, ids=[p.stem for p in STRATEGIES])
def test_shipped_strategies_load_among_the_drivers_names(path):
    strategy = driver.DRIVER.load_strategy(path)
    driver.strategy_object(strategy, "get_toy_strategy")
    for net in ("linear", "mlp"):
        driver.strategy_object(strategy, "get_hyperclean_strategy", net)


def test_toy_run_prints_every_start_and_protocols_differ():
    finals = {}
    for protocol in ("mlsbench", "corrected"):
        result = run_driver("--benchmark", "toy-convergence", "--protocol", protocol,
                            "--strategy", str(REPO / "strategies/bilevel/g_pbgd.py"))
        assert result.returncode == 0, result.stderr
        parsed = parse_log(result.stdout)
        assert [line.kind for line in parsed] == ["TRAIN_METRICS"] * 1000 + ["FINAL_METRICS"]
        assert [line.fields["run"] for line in parsed[:-1]] == list(range(1000))
        finals[protocol] = parsed[-1].fields
        assert list(finals[protocol]) == TOY_KEYS
    # mlsbench prints the original's own Python-float loop (seed 42), corrected the vectorised computation; the
    # values themselves depend on the machine's math library, so they are computed here, not written down.
    g_pbgd = ToyStrategy("g_pbgd", (10.0,), 0.1)
    original = run_toy_reference(g_pbgd, DEFAULT_TOY, 42, exact_gradient=False)
    vectorised = run_toy_vectorised(g_pbgd, DEFAULT_TOY, 42, exact_gradient=True)
    for protocol, result in (("mlsbench", original), ("corrected", vectorised)):
        for key in TOY_KEYS[:-2]:  # every key but runtime_sec and score (= convergence_steps)
            assert finals[protocol][key] == round(result.metrics[key], 6), (protocol, key)
    assert finals["corrected"]["convergence_steps"] != finals["mlsbench"]["convergence_steps"]


@pytest.mark.parametrize("benchmark, strategy", [("hyperclean-linear", "v_pbgd"), ("hyperclean-mlp", "g_pbgd"),
                                                 ("hyperclean-linear", "rhg"), ("hyperclean-mlp", "t_rhg")])
def test_tiny_hyperclean_run_of_each_method(data_root, tmp_path, benchmark, strategy):
    result = run_driver("--benchmark", benchmark, "--protocol", "corrected", "--seed", "7",
                        "--strategy", str(REPO / f"strategies/bilevel/{strategy}.py"), *TINY,
                        "--output-dir", str(tmp_path), "--label", "tiny", data_root=data_root)
    assert result.returncode == 0, result.stderr
    parsed = parse_log(result.stdout)
    final = parsed[-1]
    assert final.kind == "FINAL_METRICS" and list(final.fields) == list(FINAL_KEYS + CORRECTED_KEYS)
    evaluations = [line for line in parsed if line.kind == "TRAIN_METRICS"]
    assert len(evaluations) == (3 if strategy in ("rhg", "t_rhg") else 1)  # RHG every step; PBGD every 10th
    assert 0.0 <= final.fields["test_accuracy"] <= 100.0
    assert (tmp_path / "tiny_metrics.json").is_file()
