"""Strategies in a process of their own (optrepro.strategy_host) change no number: for every shipped parity and
bilevel strategy, what the driver prepares from it through the host equals, bit for bit, what it prepares from
the same file loaded in-process (weights, datasets, test sets, optimizer settings, the bilevel strategy objects)
and every random generator ends in the same state. The driver code after these calls is the same either way,
so the numbers it prints are too. Also: what the host cannot reach, and what a result may be."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from optrepro.sandbox import unavailable
from optrepro.strategy import StrategyError
from optrepro.strategy_host import StrategyHost, plain, rebuilt
from optrepro.tasks import get
from optrepro.tasks.bilevel import driver as bilevel
from optrepro.tasks.bilevel.config import HypercleanStrategy, ToyStrategy
from optrepro.tasks.parity import driver as parity
from optrepro.tasks.parity.config import resolve_config

REPO = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")
PARITY = sorted(path.stem for path in (REPO / "strategies" / "parity").glob("*.py"))
BILEVEL = sorted(path.stem for path in (REPO / "strategies" / "bilevel").glob("*.py"))


def generators() -> list[object]:
    return [torch.get_rng_state(), np.random.get_state()[1].copy(), np.random.get_state()[2], random.getstate()]


def same_generators(a, b) -> bool:
    return torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2:] == b[2:]


def host(task, path, functions, accepted=()):
    return StrategyHost(task, path, functions, CPU, accepted)


@pytest.mark.parametrize("name", PARITY)
def test_parity_runs_prepared_through_the_host_equal_the_in_process_ones(name):
    path = REPO / "strategies" / "parity" / f"{name}.py"
    config = resolve_config("n32-k8", "mlsbench", {"num_hidden_secrets": 2, "num_orderings": 2,
                                                   "max_train_examples": 20_000, "test_set_size": 256})
    np.random.seed(11)  # parity seeds torch and random, not numpy: a strategy drawing from it continues this stream
    local = parity.prepare_runs(parity.DRIVER.load_strategy(path),
                                config, 42, CPU)
    after_local = generators()
    np.random.seed(11)
    with host("parity", path, get("parity").strategy_functions, parity.DRIVER.accepted_results) as remote:
        hosted = parity.prepare_runs(remote, config, 42, CPU)
    assert same_generators(after_local, generators())
    (datasets, test_sets, rates, rows, runs), (h_datasets, h_test_sets, h_rates, h_rows, h_runs) = local, hosted
    assert rates == h_rates and rows == h_rows
    for (x, y), (hx, hy) in zip([*datasets, *test_sets], [*h_datasets, *h_test_sets], strict=True):
        assert torch.equal(x, hx) and torch.equal(y, hy)
    for run, h_run in zip(runs, h_runs, strict=True):
        assert run.optimizer == h_run.optimizer and (run.dataset_index, run.order_seed) == (
            h_run.dataset_index, h_run.order_seed)
        assert all(torch.equal(p, q) for p, q in zip(run.parameters, h_run.parameters, strict=True))


@pytest.mark.parametrize("name", BILEVEL)
def test_bilevel_strategy_objects_through_the_host_equal_the_in_process_ones(name):
    path = REPO / "strategies" / "bilevel" / f"{name}.py"
    local = bilevel.DRIVER.load_strategy(path)
    with host("bilevel", path, get("bilevel").strategy_functions, (ToyStrategy, HypercleanStrategy)) as remote:
        for function, args in [("get_toy_strategy", ()), ("get_hyperclean_strategy", ("linear",)),
                               ("get_hyperclean_strategy", ("mlp",))]:
            torch.manual_seed(3)
            expected, after = bilevel.strategy_object(local, function, *args), generators()
            torch.manual_seed(3)
            got = bilevel.strategy_object(remote, function, *args)
            assert type(got) is type(expected) and got == expected, function
            assert same_generators(after, generators())


HOSTILE = '''
import optrepro.metrics, os, sys

def init_model(model, config):
    optrepro.metrics.emit = lambda *args, **kwargs: None  # patching the driver: only the host's copy changes

def make_dataset(secret, config, seed):
    print("FINAL_METRICS test_accuracy=1.000000 score=1.000000", flush=True)
    print("ERROR: forged", file=sys.stderr, flush=True)
    seen = sorted(os.listdir(os.environ["DATA_ROOT"])) + sorted(os.listdir("results"))
    x = torch.zeros(len(seen) + 8, config.n_features)
    return x, parity_labels(x, secret)

def get_optimizer_config(config):
    return {"lr": 1e-3, "wd": 0.0, "beta1": 0.9, "beta2": 0.999}
'''


def test_a_strategy_prints_patches_and_reads_nothing_of_the_drivers(tmp_path):
    """Run by hand from a workflow folder: the strategy's lines reach stderr prefixed, never stdout; its patch
    of the driver's module changes the host's copy only; the data root and results/ look empty to it."""
    if reason := unavailable(nested=True):
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the sandbox tests: {reason}")
        pytest.skip(reason)
    (tmp_path / "s.py").write_text(HOSTILE)
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    (tmp_path / "results" / "runs").mkdir(parents=True)
    done = subprocess.run([sys.executable, "-m", "optrepro.tasks.parity", "--benchmark", "n32-k8", "--strategy",
                           "s.py", "--seed", "1", "--set", "num_hidden_secrets=1", "--set", "num_orderings=1",
                           "--set", "max_steps=2", "--set", "test_set_size=16"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=900, env=dict(os.environ,
                                                           DATA_ROOT=str(tmp_path / "data")))
    assert done.returncode == 0, done.stderr
    assert "strategy| FINAL_METRICS test_accuracy=1.000000" in done.stderr
    assert "strategy| ERROR: forged" in done.stderr and "\nERROR" not in "\n" + done.stderr
    assert "DATASET_METRICS secret=0 num_examples=8 " in done.stdout  # it saw nothing in either folder
    assert [line.split()[0] for line in done.stdout.splitlines()][-2:] == ["FINAL_METRICS", "TEST_METRICS"]
    assert "test_accuracy=1.000000" not in done.stdout


def test_a_host_that_dies_during_a_call_fails_with_the_reason(tmp_path):
    (tmp_path / "s.py").write_text("def get_toy_strategy():\n    import os, signal; os.kill(os.getpid(), "
                                   "signal.SIGKILL)\n\ndef get_hyperclean_strategy(net):\n    raise SystemExit(4)\n")
    with host("bilevel", tmp_path / "s.py", get("bilevel").strategy_functions) as remote:
        with pytest.raises(StrategyError, match=r"ended while running get_toy_strategy: killed by SIGKILL "
                                                r"\(out of memory\?\)$"):
            remote.get_toy_strategy()
    with host("bilevel", tmp_path / "s.py", get("bilevel").strategy_functions) as remote:
        with pytest.raises(StrategyError, match=r"ended while running get_hyperclean_strategy: exit status 4$"):
            remote.get_hyperclean_strategy("linear")


def test_load_errors_read_as_they_do_in_process(tmp_path):
    for source in ("def get_toy_strategy(:\n", "x = 1\n", "raise ValueError('at load')\n"):
        (tmp_path / "s.py").write_text(source)
        with pytest.raises(StrategyError) as local:
            bilevel.DRIVER.load_strategy(tmp_path / "s.py")
        with pytest.raises(StrategyError) as remote:
            host("bilevel", tmp_path / "s.py", get("bilevel").strategy_functions)
        assert remote.value.message == local.value.message


class Odd:
    pass


def test_results_cross_as_plain_values_and_nothing_else():
    toy = ToyStrategy("v_pbgd", (1.0, 2.0), 0.1)
    assert rebuilt(plain(toy), {"ToyStrategy": ToyStrategy}) == toy
    assert type(rebuilt(plain(toy), {})).__name__ == "ToyStrategy"  # not accepted: an empty stand-in
    assert type(rebuilt(plain(Odd()), {})).__name__ == "Odd"
    value = plain({"x": np.arange(3, dtype=np.int16), "n": np.float64(0.5), "t": (1, [2.5, None]), "b": True})
    assert torch.equal(value["x"], torch.arange(3, dtype=torch.int16)) and value["n"] == 0.5
    assert value["t"] == (1, [2.5, None]) and type(value["n"]) is float
    assert value["b"] is True
    assert type(rebuilt(plain(type("Evil", (float,), {})(1.0)), {})).__name__ == "Evil"  # never pickled as itself
