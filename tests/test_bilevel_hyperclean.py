"""MNIST data hyper-cleaning (docs/tasks/bilevel.md §3.2, §3.4, §3.5, §6-§9).

* `HypercleanStrategy.validate`: every rule, in the original's order;
* pollution (§6.4): ⌊ρ n⌋ examples marked dirty, labels changed only there,
  drawn by `randint(0, |L \\ {label}|)` (so about a tenth keep their label),
  deterministic per seed;
* the reverse hypergradient against the gradient of the unrolled map (K = T)
  computed by plain autograd;
* a tiny run of every method on real MNIST (skipped with OPTREPRO_OFFLINE=1):
  FINAL_METRICS keys and order, value ranges, TRAIN_METRICS lines;
* best-record selection (§7.2) and the corrected protocol's choice by
  validation loss, on hand-made records.
"""

from __future__ import annotations

import io
import math
import os
import random
from dataclasses import replace

import pytest
import torch

from optrepro.metrics import parse_line, parse_log
from optrepro.tasks.bilevel import driver, hyperclean, methods
from optrepro.tasks.bilevel.config import (
    DEFAULT_HYPERCLEAN,
    HypercleanConfig,
    HypercleanEval,
    HypercleanStrategy,
)

FINAL_KEYS = [
    "test_accuracy", "f1_score", "cleaner_precision", "cleaner_recall", "best_step", "runtime_sec",
    "total_runtime_sec", "best_accuracy_test_accuracy", "best_accuracy_f1_score", "best_accuracy_cleaner_precision",
    "best_accuracy_cleaner_recall", "best_accuracy_step", "best_accuracy_runtime_sec", "best_f1_test_accuracy",
    "best_f1_f1_score", "best_f1_cleaner_precision", "best_f1_cleaner_recall", "best_f1_step",
    "best_f1_runtime_sec", "score"]
CORRECTED_KEYS = [f"{p}_{k}" for p in ("val_selected", "last") for k in
                  ("test_accuracy", "f1_score", "cleaner_precision", "cleaner_recall", "step", "val_loss",
                   "runtime_sec")]

PBGD_OK = dict(lrx=0.1, lry=0.1, lr_inner=0.01, outer_itr=5, inner_itr=1, gamma_init=0.0, gamma_max=0.2,
               gamma_argmax_step=3)
RHG_OK = dict(lr=0.001, lr_inner=0.1, outer_itr=2, T=4, K=2)


# ---------------------------------------------------------------------------
# Configuration (§3.2, §3.4, §3.5)
# ---------------------------------------------------------------------------


def test_config_defaults():
    assert (DEFAULT_HYPERCLEAN.dataset_name, DEFAULT_HYPERCLEAN.train_size, DEFAULT_HYPERCLEAN.val_size,
            DEFAULT_HYPERCLEAN.test_size, DEFAULT_HYPERCLEAN.pollute_rate) == ("MNIST", 5000, 5000, 10000, 0.5)
    assert DEFAULT_HYPERCLEAN.dataset_root == os.environ.get("DATA_ROOT", "/data") + "/mnist"
    s = HypercleanStrategy("rhg")
    assert (s.lrx, s.lry, s.lr_inner, s.gamma_init, s.gamma_max, s.gamma_argmax_step, s.outer_itr, s.inner_itr,
            s.lr, s.T, s.K, s.reg, s.eval_interval) == (0.0, 0.0, 0.0, 0.0, 0.0, 1, 0, 1, 0.0, 0, 0, 0.0, 10)
    with pytest.raises(ValueError, match="must not exceed 60000"):
        HypercleanConfig(train_size=30000, val_size=30000, test_size=1).validate()


@pytest.mark.parametrize("method, fields, message", [
    ("sgd", {}, "Unsupported hyperclean method: sgd"),
    # common checks come first, before any method-specific one
    ("v_pbgd", dict(eval_interval=0), "eval_interval must be positive."),
    ("rhg", dict(eval_interval=-1, reg=-1.0), "eval_interval must be positive."),
    ("g_pbgd", dict(reg=-0.1), "reg must be non-negative."),
    ("rhg", dict(reg=-0.1, lr=0.0), "reg must be non-negative."),
    # PBGD
    ("v_pbgd", dict(PBGD_OK, lrx=0.0, outer_itr=0), "lrx and lry must be positive."),
    ("g_pbgd", dict(PBGD_OK, lry=-1.0), "lrx and lry must be positive."),
    ("g_pbgd", dict(PBGD_OK, outer_itr=0, gamma_init=-1.0), "outer_itr must be positive."),
    ("v_pbgd", dict(PBGD_OK, gamma_init=-1.0, gamma_argmax_step=0), "gamma_init and gamma_max must be non-negative."),
    ("g_pbgd", dict(PBGD_OK, gamma_max=-1.0), "gamma_init and gamma_max must be non-negative."),
    ("g_pbgd", dict(PBGD_OK, gamma_argmax_step=0), "gamma_argmax_step must be positive."),
    ("v_pbgd", dict(PBGD_OK, gamma_argmax_step=0, lr_inner=0.0), "gamma_argmax_step must be positive."),
    ("v_pbgd", dict(PBGD_OK, lr_inner=0.0, inner_itr=0), "lr_inner must be positive for v_pbgd."),
    ("v_pbgd", dict(PBGD_OK, inner_itr=0), "inner_itr must be positive for v_pbgd."),
    # RHG / T-RHG
    ("rhg", dict(RHG_OK, lr=0.0, T=0), "lr and lr_inner must be positive."),
    ("t_rhg", dict(RHG_OK, lr_inner=-0.1), "lr and lr_inner must be positive."),
    ("rhg", dict(RHG_OK, outer_itr=0), "outer_itr, T and K must be positive."),
    ("t_rhg", dict(RHG_OK, T=0, K=0), "outer_itr, T and K must be positive."),
    ("rhg", dict(RHG_OK, K=0), "outer_itr, T and K must be positive."),
    ("t_rhg", dict(RHG_OK, T=3, K=4), "K must not exceed T."),
])
def test_strategy_validation(method, fields, message):
    with pytest.raises(ValueError) as info:
        HypercleanStrategy(method, **fields).validate()
    assert str(info.value) == message


def test_strategy_validation_ignores_unused_fields():
    # g_pbgd ignores lr_inner/inner_itr; rhg ignores lrx, lry, the gamma fields and inner_itr.
    HypercleanStrategy("g_pbgd", **dict(PBGD_OK, lr_inner=0.0, inner_itr=0, T=-1, lr=-1.0)).validate()
    HypercleanStrategy("rhg", **dict(RHG_OK, lrx=-1.0, gamma_argmax_step=0, inner_itr=0)).validate()
    HypercleanStrategy("rhg", **dict(RHG_OK, K=4)).validate()  # K = T
    # The §10 baselines validate.
    HypercleanStrategy("v_pbgd", lrx=0.1, lry=0.1, lr_inner=0.01, gamma_init=0.0, gamma_max=0.2,
                       gamma_argmax_step=30000, outer_itr=40000, inner_itr=1, eval_interval=10).validate()
    HypercleanStrategy("t_rhg", lr_inner=0.4, outer_itr=100, lr=0.001, T=500, K=100, eval_interval=1).validate()


def test_eval_record_converts_tensors():
    record = HypercleanEval(torch.tensor(3), torch.tensor(1.5), 2, torch.tensor(90.0, dtype=torch.float64),
                            50.0, 0.5, 1.0, torch.tensor(0.25), 0.1)
    assert record.step == 3 and type(record.step) is int
    assert all(type(getattr(record, k)) is float for k in ("train_loss", "val_loss", "test_accuracy", "aux_value"))


# ---------------------------------------------------------------------------
# Pollution (§6.4)
# ---------------------------------------------------------------------------


def _polluted(seed: int, n: int = 5000, rate: float = 0.5):
    labels = torch.arange(n) % 10
    split = hyperclean.HypercleanSplit(torch.zeros(n, 1, 1, dtype=torch.uint8), labels.clone())
    split.pollute(rate, random.Random(seed))
    return labels, split


def test_pollution_counts_and_draws():
    labels, split = _polluted(0)
    dirty = split.clean == 0
    assert int(dirty.sum()) == 2500 and int((split.clean == 1).sum()) == 2500 and split.rho == 0.5
    changed = split.dirty_targets != labels
    assert not changed[~dirty].any()  # clean examples keep their label
    assert torch.equal(split.targets, labels)  # the clean labels are kept beside the dirty ones
    # randint(0, 9) can return the true label: about a tenth of the dirty examples keep it.
    kept = int((~changed & dirty).sum())
    assert 150 <= kept <= 350
    assert set(split.dirty_targets[dirty].tolist()) == set(range(10))
    # ⌊rate·n⌋ for other rates and sizes
    _, odd = _polluted(1, n=333, rate=0.3)
    assert int((odd.clean == 0).sum()) == int(0.3 * 333) == 99


def test_pollution_seeded():
    _, a = _polluted(7)
    _, b = _polluted(7)
    _, c = _polluted(8)
    assert torch.equal(a.dirty_targets, b.dirty_targets) and torch.equal(a.clean, b.clean)
    assert not torch.equal(a.clean, c.clean)
    # The global generator (what the driver uses) gives the same draws as a Random with the same seed.
    labels = torch.arange(5000) % 10
    g = hyperclean.HypercleanSplit(torch.zeros(5000, 1, 1, dtype=torch.uint8), labels.clone())
    random.seed(7)
    g.pollute(0.5)
    assert torch.equal(g.dirty_targets, a.dirty_targets)


def test_split_uses_one_stream():
    images = torch.arange(100, dtype=torch.uint8).reshape(100, 1, 1).expand(100, 2, 2).contiguous()
    targets = torch.arange(100) % 10
    cfg = HypercleanConfig(train_size=20, val_size=10, test_size=30)
    rng = random.Random(3)
    train, val, test = hyperclean.split_and_pollute(images, targets, cfg, rng)
    ref = random.Random(3)
    index = list(range(100))
    ref.shuffle(index)
    assert torch.equal(val.targets, targets[index[20:30]]) and torch.equal(test.targets, targets[index[30:60]])
    assert float(train.data.max()) == 1.0 and train.data.shape == (20, 4)
    order = list(range(20))
    ref.shuffle(order)  # the pollution shuffle follows the split shuffle directly
    assert sorted(order[:10]) == sorted((train.clean == 0).nonzero().flatten().tolist())


# ---------------------------------------------------------------------------
# The reverse hypergradient (§8.5)
# ---------------------------------------------------------------------------


def _toy_problem(n=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    train = hyperclean.HypercleanSplit(torch.randn(n, 784, generator=gen), torch.randint(0, 10, (n,), generator=gen))
    train.dirty_targets = train.targets
    val = hyperclean.HypercleanSplit(torch.randn(8, 784, generator=gen), torch.randint(0, 10, (8,), generator=gen))
    x = (0.5 * torch.randn(n, generator=gen, dtype=torch.float32)).requires_grad_(True)
    params = [0.05 * torch.randn(10, 784, generator=gen), 0.05 * torch.randn(10, generator=gen)]
    return train, val, x, params


@pytest.mark.parametrize("reg", [0.0, 0.01])
def test_reverse_equals_backprop_through_unroll(reg):
    train, val, x, y0 = _toy_problem()
    T = 3

    def phi(params, hparams):
        return methods._inner_step(params, hparams, train, 0.5, reg, create_graph=True)

    # plain backprop through the whole unroll
    current = [p.clone().requires_grad_(True) for p in y0]
    history = [[p.detach() for p in current]]
    for _ in range(T):
        current = phi(current, x)
        history.append([p.detach() for p in current])
    expected, = torch.autograd.grad(hyperclean.upper_loss(current, val), x)
    got = methods.reverse_hypergradient(history, x, phi, lambda p: hyperclean.upper_loss(p, val))
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-7) and torch.equal(x.grad, got)
    # Truncated: H = [y0, y_T]; the one recomputed map sits at y0, not at y_{T-1} (the original's quirk).
    x.grad = None
    trunc = methods.reverse_hypergradient([history[0], history[-1]], x, phi, lambda p: hyperclean.upper_loss(p, val))
    leaves = [p.clone().requires_grad_(True) for p in history[-1]]
    alpha = torch.autograd.grad(hyperclean.upper_loss(leaves, val), leaves)
    start = [p.clone().requires_grad_(True) for p in history[0]]
    manual, = torch.autograd.grad(phi(start, x), x, grad_outputs=alpha)
    assert torch.allclose(trunc, manual, rtol=1e-5, atol=1e-8)


# ---------------------------------------------------------------------------
# Selection (§7.2) and the corrected protocol
# ---------------------------------------------------------------------------


def _rec(step, acc, f1, val_loss=1.0):
    return HypercleanEval(step, 0.5, val_loss, acc, f1, 0.6, 0.7, 0.0, float(step))


def test_best_record_rules():
    records = [_rec(0, 80.0, 50.0), _rec(1, 85.0, 40.0), _rec(2, 85.0, 45.0), _rec(3, 85.0, 45.0),
               _rec(4, 84.0, 60.0), _rec(5, 70.0, 60.0)]
    best_acc = best_f1 = None
    for record in records:
        best_acc = hyperclean.update_best_by_accuracy(best_acc, record)
        best_f1 = hyperclean.update_best_by_f1(best_f1, record)
    assert best_acc.step == 2  # tie on accuracy, strictly larger F1; a full tie keeps the earlier one
    assert best_f1.step == 4  # tie on F1, larger accuracy wins
    metrics = hyperclean.summarize_hyperclean_metrics(best_acc, best_f1, 9.0)
    assert list(metrics) == FINAL_KEYS
    assert metrics["test_accuracy"] == metrics["score"] == metrics["best_accuracy_test_accuracy"] == 85.0
    assert metrics["best_step"] == 2.0 and metrics["best_f1_step"] == 4.0 and metrics["total_runtime_sec"] == 9.0
    assert metrics["best_f1_test_accuracy"] == 84.0 and metrics["runtime_sec"] == 2.0
    with pytest.raises(RuntimeError):
        hyperclean.summarize_hyperclean_metrics(None, None, 0.0)


def test_corrected_selection_by_validation_loss():
    records = [_rec(0, 80.0, 50.0, val_loss=1.2), _rec(10, 95.0, 40.0, val_loss=0.9),
               _rec(20, 85.0, 45.0, val_loss=0.7), _rec(30, 90.0, 45.0, val_loss=0.7),
               _rec(40, 99.0, 60.0, val_loss=0.8)]
    assert hyperclean.select_by_val_loss(records).step == 20  # lowest, earliest on a tie; not the best test accuracy
    extras = hyperclean.corrected_extras(records)
    assert list(extras) == CORRECTED_KEYS
    assert extras["val_selected_test_accuracy"] == 85.0 and extras["val_selected_step"] == 20.0
    assert extras["val_selected_val_loss"] == 0.7
    assert extras["last_test_accuracy"] == 99.0 and extras["last_step"] == 40.0


# ---------------------------------------------------------------------------
# Tiny runs on real MNIST
# ---------------------------------------------------------------------------


TINY = HypercleanConfig(train_size=300, val_size=200, test_size=400)
STRATEGIES = {
    "v_pbgd": HypercleanStrategy("v_pbgd", lrx=0.1, lry=0.1, lr_inner=0.01, gamma_init=0.0, gamma_max=0.2,
                                 gamma_argmax_step=30000, outer_itr=40000, inner_itr=2, eval_interval=4),
    "g_pbgd": HypercleanStrategy("g_pbgd", lrx=0.3, lry=0.5, gamma_init=0.0, gamma_max=37.0,
                                 gamma_argmax_step=5, outer_itr=40000, eval_interval=4),
    "rhg": HypercleanStrategy("rhg", lr_inner=0.1, outer_itr=100, lr=0.001, T=5, K=5, eval_interval=1),
    "t_rhg": HypercleanStrategy("t_rhg", lr_inner=0.4, outer_itr=100, lr=0.001, T=5, K=2, eval_interval=1),
}


@pytest.mark.parametrize("net, method", [("linear", "v_pbgd"), ("mlp", "g_pbgd"), ("linear", "rhg"),
                                         ("mlp", "t_rhg")])
def test_tiny_run(mnist_root, net, method):
    strategy = STRATEGIES[method]
    outer = 3 if method in ("rhg", "t_rhg") else 10
    out = io.StringIO()
    metrics = driver.run_hyperclean(strategy, net=net, seed=42, config=TINY, protocol="corrected", outer_itr=outer,
                                root=mnist_root, stream=out)
    assert list(metrics) == FINAL_KEYS + CORRECTED_KEYS
    lines = out.getvalue().splitlines()
    train = [parse_line(line) for line in lines[:-1]]
    aux = methods.AUX_NAMES[method]
    expected_steps = list(range(outer)) if method in ("rhg", "t_rhg") else list(range(0, outer, 4))
    assert [t.kind for t in train] == ["TRAIN_METRICS"] * len(expected_steps)
    assert [t.fields["step"] for t in train] == expected_steps
    for t in train:
        assert list(t.fields) == ["step", "train_loss", "val_loss", "test_accuracy", "f1_score",
                                  "cleaner_precision", "cleaner_recall", aux, "iter_time"]
    assert all(len(line.split("test_accuracy=")[1].split()[0].split(".")[1]) == 3 for line in lines[:-1])
    final = parse_line(lines[-1])
    assert final.kind == "FINAL_METRICS" and list(final.fields) == list(metrics)
    for key, value in metrics.items():
        assert math.isfinite(value)
        assert final.fields[key] == pytest.approx(value, abs=1e-6)
    accuracies = [t.fields["test_accuracy"] for t in train]
    assert metrics["test_accuracy"] == pytest.approx(max(accuracies), abs=1e-3) == metrics["score"]
    for prefix in ("", "best_accuracy_", "best_f1_", "val_selected_", "last_"):
        assert 0.0 <= metrics[f"{prefix}test_accuracy"] <= 100.0
        assert 0.0 <= metrics[f"{prefix}f1_score"] <= 100.0
        assert 0.0 <= metrics[f"{prefix}cleaner_precision"] <= 1.0 + 1e-6
        assert 0.0 <= metrics[f"{prefix}cleaner_recall"] <= 1.0 + 1e-6
    assert metrics["best_step"] in [float(s) for s in expected_steps]
    assert metrics["last_step"] == float(expected_steps[-1])
    assert 0.0 <= metrics["runtime_sec"] <= metrics["total_runtime_sec"]
    if method == "v_pbgd":
        # gamma_init = 0: x gets a zero gradient at step 0, so every example is still kept.
        first = train[0].fields
        assert first["cleaner_recall"] == 1.0 and first["f1_score"] == pytest.approx(66.667, abs=0.01)


def test_mlsbench_run_is_seeded_and_same_trajectory(mnist_root):
    strategy = replace(STRATEGIES["v_pbgd"], eval_interval=3)
    logs = []
    for protocol in ("mlsbench", "mlsbench", "corrected"):
        out = io.StringIO()
        metrics = driver.run_hyperclean(strategy, "linear", 7, TINY, protocol=protocol, outer_itr=7, root=mnist_root,
                                    stream=out)
        assert list(metrics) == (FINAL_KEYS if protocol == "mlsbench" else FINAL_KEYS + CORRECTED_KEYS)
        logs.append([{k: v for k, v in line.fields.items() if k != "iter_time"}
                     for line in parse_log(out.getvalue()) if line.kind == "TRAIN_METRICS"])
    assert logs[0] == logs[1] == logs[2]  # deterministic on CPU; the corrected extras do not change the run
