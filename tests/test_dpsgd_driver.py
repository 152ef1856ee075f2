"""The DP-SGD driver end to end (dpsgd.md §3, §7, §9): `python -m optrepro.tasks.dpsgd`, called in-process.

Offline, on random images in Fashion-MNIST's torchvision layout:
* the spec's lines in the spec's order, then a FINAL_METRICS line the
  runner can parse, for both protocols (PRV as well);
* `corrected` refuses a run whose reported noise would overspend the budget,
  which `mlsbench` lets finish;
* strategy contract violations and bad input give one `ERROR:` line, exit 2;
* the audit changes nothing: a run with it prints the same lines as one without;
* CIFAR10Net trains through the same loop.
With MNIST from the package index (skipped with OPTREPRO_OFFLINE=1): a
1-epoch run on a subset of the real data.
"""

from __future__ import annotations

import random
import re
import textwrap
from pathlib import Path

import pytest
import torch
import torchvision
from test_dpsgd_audit import VARIANTS as AUDIT_VARIANTS
from torchvision import transforms

from optrepro.metrics import divergence, final_metrics, parse_log
from optrepro.tasks.dpsgd.config import resolve_config
from optrepro.tasks.dpsgd.driver import DRIVER, is_private, main, run_benchmark
from optrepro.tasks.dpsgd.vectorised import NORMALIZATION, load_split, poisson_batches

STANDARD = (Path(__file__).resolve().parent.parent / "strategies" / "dpsgd" / "standard_dpsgd.py").read_text()
# 416 examples in batches of 8: 52 steps an epoch, so one TRAIN_METRICS line (after batch 50) per epoch.
TINY = ["--set", "batch_size=8", "--set", "max_train_examples=416", "--set", "max_test_examples=40"]
FINAL_KEYS = ["score", "accuracy", "best_accuracy", "epsilon", "epsilon_rdp", "sigma", "sigma_reported", "audit",
              "audit_ratio", "private", "target_epsilon", "accountant", "sampling", "neighbours", "target_delta"]
LINE_PATTERNS = [
    r"TASK_CONFIG dataset=\w+ epochs=\d+ batch_size=\d+ .* train_examples=\d+ test_examples=\d+",
    r"Calibrated noise_multiplier sigma=\d+\.\d{4} for epsilon=3\.0, delta=1e-05, steps=\d+, q=\d\.\d{4}",
    r"Model: MNISTNet, Parameters: 26010",
    r"TRAIN_METRICS epoch=1 step=50 loss=\d+\.\d{6} accuracy=\d+\.\d{2}",
    r"Epoch 1/2: train_loss=\d+\.\d{4} train_acc=\d+\.\d{2}% test_loss=\d+\.\d{4} test_acc=\d+\.\d{2}% "
    r"epsilon_spent=\d+\.\d{2} sigma=\d+\.\d{4}",
    r"TRAIN_METRICS epoch=2 step=102 loss=\d+\.\d{6} accuracy=\d+\.\d{2}",
    r"Epoch 2/2: .* epsilon_spent=\d+\.\d{2} sigma=\d+\.\d{4}",
    r"",
    r"TEST_METRICS accuracy=\d+\.\d{4} epsilon=\d+\.\d{4} best_accuracy=\d+\.\d{4}",
    r"",
    r"Final Results: accuracy=\d+\.\d{2}%, best_accuracy=\d+\.\d{2}%, epsilon=\d+\.\d{2}",
    r"FINAL_METRICS score=\S+ accuracy=\S+ best_accuracy=\S+ epsilon=\S+ epsilon_rdp=\S+ sigma=\S+ "
    r"sigma_reported=\S+ audit=\S+ audit_ratio=\S+ private=1 target_epsilon=3.000000 accountant=benchmark "
    r"sampling=shuffled neighbours=add-remove target_delta=1e-05",
]
# Reports half the calibrated σ and adds that much noise: honest, but twice the spend per step.
HALF_SIGMA = STANDARD + """
Standard = DPMechanism
class DPMechanism(Standard):
    def __init__(self, **kwargs):
        super().__init__(**{**kwargs, "noise_multiplier": kwargs["noise_multiplier"] / 2})
"""
# Draws from every global generator, so a leak of the audit's draws would change the run.
ALL_GENERATORS = STANDARD + """
import random
Standard = DPMechanism
class DPMechanism(Standard):
    def clip_and_noise(self, grads, step, epoch):
        out = super().clip_and_noise(grads, step, epoch)
        jitter = 1e-4 * (float(np.random.standard_normal()) + random.gauss(0.0, 1.0))
        return [g + jitter + 1e-4 * torch.randn(g.shape) for g in out]
"""


def run_driver(tmp_path, capsys, monkeypatch, root, source=STANDARD, args=(), benchmark="fmnist"):
    path = tmp_path / "mechanism.py"
    path.write_text(source)
    monkeypatch.setenv("DATA_ROOT", str(root))
    status = main(["--benchmark", benchmark, "--strategy", str(path), "--device", "cpu", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err, str(path)


def test_mnist_format_is_loaded_and_normalised(fake_root):
    x, y = load_split("fmnist", fake_root / "fmnist", train=True, limit=10)
    assert x.shape == (10, 1, 28, 28) and x.dtype == torch.float32 and y.tolist() == list(range(10))
    reference = transforms.Compose([transforms.ToTensor(), transforms.Normalize(*NORMALIZATION["fmnist"])])
    dataset = torchvision.datasets.FashionMNIST(fake_root / "fmnist", train=True, transform=reference)
    assert torch.equal(x[3], dataset[3][0])


def test_mlsbench_lines_follow_the_spec(tmp_path, capsys, monkeypatch, fake_root):
    status, out, err, _ = run_driver(tmp_path, capsys, monkeypatch, fake_root, args=[*TINY, "--set", "epochs=2"])
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == len(LINE_PATTERNS)
    for line, pattern in zip(lines, LINE_PATTERNS):
        assert re.fullmatch(pattern, line), (pattern, line)
    parsed = parse_log(out)
    final = final_metrics(parsed)
    assert list(final) == FINAL_KEYS
    test = next(line.fields for line in parsed if line.kind == "TEST_METRICS")
    assert (final["accuracy"], final["epsilon"], final["best_accuracy"]) == (
        test["accuracy"], test["epsilon"], test["best_accuracy"])
    assert final["score"] == final["best_accuracy"] and final["audit"] == "ok"
    assert abs(final["epsilon"] - 3.0) < 0.01 < final["epsilon_rdp"] - 3.0  # the benchmark's ε=3 is not Opacus' ε=3
    epochs = [line.fields for line in parsed if line.kind == "EPOCH"]
    assert [e["sigma"] for e in epochs] == [round(final["sigma"], 4)] * 2


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_corrected_run(tmp_path, capsys, monkeypatch, fake_root, accountant):
    status, out, err, _ = run_driver(tmp_path, capsys, monkeypatch, fake_root, args=[
        *TINY, "--protocol", "corrected", "--set", "epochs=1", "--set", f"accountant={accountant}"])
    assert status == 0 and err == ""
    final = final_metrics(parse_log(out))
    assert final["score"] == final["accuracy"] and 2.98 <= final["epsilon"] <= 3.0
    if accountant == "rdp":
        assert final["epsilon_rdp"] == final["epsilon"]


def test_corrected_refuses_an_overspend_that_mlsbench_reports(tmp_path, capsys, monkeypatch, fake_root):
    args = [*TINY, "--set", "epochs=2", "--set", "audit=0"]
    status, out, err, path = run_driver(tmp_path, capsys, monkeypatch, fake_root, HALF_SIGMA,
                                        [*args, "--protocol", "corrected"])
    assert status == 2 and err.count("\n") == 1
    assert err.startswith(f"ERROR: {path}: privacy budget exceeded: after epoch 1/2 ")
    assert "FINAL_METRICS" not in out and "Epoch 1/2" in out and "Epoch 2/2" not in out
    status, out, err, _ = run_driver(tmp_path, capsys, monkeypatch, fake_root, HALF_SIGMA, args)
    assert status == 0 and final_metrics(parse_log(out))["epsilon"] > 6  # about twice the target


def variant(returned="out", sigma="self.noise_multiplier", first="pass"):
    """The baseline with its output, its reported σ or a first statement of clip_and_noise changed."""
    return STANDARD + textwrap.dedent(f"""
        Standard = DPMechanism
        class DPMechanism(Standard):
            def clip_and_noise(self, grads, step, epoch):
                {first}
                out = super().clip_and_noise(grads, step, epoch)
                return {returned}
            def get_effective_sigma(self, step, epoch):
                return {sigma}
        """)


CASES = [
    ("x = 1\n", "missing function(s) DPMechanism"),
    ("class DPMechanism:\n    def __init__(self)\n", "SyntaxError"),
    ("class DPMechanism:\n    def __init__(self, max_grad_norm):\n        pass\n", "DPMechanism raised TypeError"),
    (variant(returned="out[0]"), "clip_and_noise must return a list of tensors, got Tensor"),
    (variant(returned="[o[:1] for o in out]"), "clip_and_noise returned torch.float32 (1, 1, 8, 8) for "
                                              "parameter 0; expected torch.float32 (16, 1, 8, 8)"),
    (variant(returned="[o.double() for o in out]"), "returned torch.float64"),
    (variant(returned="out[:3] + [None]"), "returned NoneType for parameter 3"),
    (variant(first="raise ValueError('no clipping today')"), "clip_and_noise raised ValueError: no clipping today"),
    (variant(sigma="0.0"), "get_effective_sigma must return a positive number, got 0.0"),
    (variant(sigma="None"), "got None"),
    (variant(sigma="float('nan')"), "got nan"),
]


@pytest.mark.parametrize("source, message", CASES)
def test_contract_violation_gives_one_error_line(tmp_path, capsys, monkeypatch, fake_root, source, message):
    status, out, err, path = run_driver(tmp_path, capsys, monkeypatch, fake_root, source,
                                        [*TINY, "--set", "epochs=1", "--set", "max_train_examples=16"])
    assert status == 2 and err.count("\n") == 1 and err.startswith(f"ERROR: {path}: ")
    assert message in err and "FINAL_METRICS" not in out


@pytest.mark.parametrize("args, message", [
    (["--set", "epochs=many"], "'many' is not a valid int"),
    (["--set", "seed=1"], "expected FIELD=VALUE"),
    (["--set", "accountant=prv"], "does not belong to protocol mlsbench"),
    (["--set", "batch_size=1000"], "batch_size 1000 exceeds the 420 training examples"),
])
def test_bad_input_gives_one_error_line(tmp_path, capsys, monkeypatch, fake_root, args, message):
    status, out, err, path = run_driver(tmp_path, capsys, monkeypatch, fake_root, args=args)
    assert status == 2 and err.count("\n") == 1 and err.startswith(f"ERROR: {path}: ") and message in err


def test_missing_dataset_names_the_folder(tmp_path, capsys, monkeypatch):
    status, _, err, _ = run_driver(tmp_path, capsys, monkeypatch, tmp_path / "empty", benchmark="mnist")
    assert status == 2 and err.count("\n") == 1
    assert f"mnist is not ready under {tmp_path / 'empty' / 'mnist'}" in err


def test_audit_changes_nothing(tmp_path, capsys, monkeypatch, fake_root):
    runs = []
    for audit in ("1", "0"):
        random.seed(0)  # the original seeds torch and numpy only (§7.1)
        status, out, _, _ = run_driver(tmp_path, capsys, monkeypatch, fake_root, ALL_GENERATORS,
                                       [*TINY, "--set", "epochs=2", "--set", f"audit={audit}"])
        assert status == 0
        runs.append(out.splitlines())
    with_audit, without = runs
    assert with_audit[1:-1] == without[1:-1]  # TASK_CONFIG names the audit setting; FINAL_METRICS its verdict
    final = [final_metrics(parse_log(run)) for run in runs]
    assert final[0]["audit"] == "ok" and final[1]["audit"] == "off"
    assert {k: v for k, v in final[0].items() if not k.startswith("audit")} == {
        k: v for k, v in final[1].items() if not k.startswith("audit")}


def test_cifar10_net_trains_through_the_loop(tmp_path, capsys):
    path = tmp_path / "standard.py"
    path.write_text(STANDARD)
    strategy = DRIVER.load_strategy(path)
    config = resolve_config("cifar10", "corrected", {"epochs": 1, "batch_size": 4})
    generator = torch.Generator().manual_seed(0)
    data = (torch.randn(12, 3, 32, 32, generator=generator), torch.arange(12) % 10,
            torch.randn(6, 3, 32, 32, generator=generator), torch.arange(6) % 10)
    metrics = run_benchmark(strategy, config, 42, data)
    out = capsys.readouterr().out
    assert "Model: CIFAR10Net, Parameters: 132042" in out and "steps=3, q=0.3333" in out
    assert metrics["audit"] == "ok" and 0 <= metrics["accuracy"] <= 100


def test_real_mnist_subset(tmp_path, capsys, monkeypatch, data_root):
    args = ["--set", "epochs=1", "--set", "batch_size=32", "--set", "max_train_examples=1600",
            "--set", "max_test_examples=1000"]
    status, out, err, _ = run_driver(tmp_path, capsys, monkeypatch, data_root, args=args, benchmark="mnist")
    assert status == 0 and err == ""
    kinds = [line.kind for line in parse_log(out)]
    assert kinds == ["TASK_CONFIG", "CALIBRATION", "MODEL", "TRAIN_METRICS", "EPOCH", "TEST_METRICS",
                     "FINAL_RESULTS", "FINAL_METRICS"]
    assert "steps=50, q=0.0200" in out
    final = final_metrics(parse_log(out))
    assert list(final) == FINAL_KEYS and final["audit"] == "ok"
    assert final["accuracy"] > 30  # 50 noisy steps on real digits learn something


NAN_MECHANISM = STANDARD + """
Standard = DPMechanism
class DPMechanism(Standard):
    def clip_and_noise(self, grads, step, epoch):
        return [torch.full_like(g, float("nan")) for g in super().clip_and_noise(grads, step, epoch)]
"""


def test_a_mechanism_that_returns_nan_diverges(tmp_path, capsys, monkeypatch, fake_root):
    status, out, err, _ = run_driver(tmp_path, capsys, monkeypatch, fake_root, NAN_MECHANISM,
                                     [*TINY, "--set", "epochs=1", "--set", "audit=0"])
    assert status == 0  # the driver finishes; the runner records the run as failed
    assert divergence(parse_log(out)) == "diverged: loss nan at step 50"


# Noise only at the batch the old audit always probed (the middle one of an epoch, computable from the
# mechanism's own arguments); nothing elsewhere. The audit now probes a batch the driver draws privately.
NOISE_ONLY_WHEN_WATCHED = STANDARD + """
Standard = DPMechanism
class DPMechanism(Standard):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.steps = kwargs["dataset_size"] // kwargs["batch_size"]

    def clip_and_noise(self, grads, step, epoch):
        steps = self.steps
        if step % steps == steps // 2:
            return super().clip_and_noise(grads, step, epoch)
        sigma, self.noise_multiplier = self.noise_multiplier, 0.0
        out = super().clip_and_noise(grads, step, epoch)
        self.noise_multiplier = sigma
        return out
"""


def test_noise_only_where_the_audit_used_to_look_is_caught(tmp_path, capsys, monkeypatch, fake_root):
    args = [*TINY, "--set", "epochs=3"]
    status, out, err, path = run_driver(tmp_path, capsys, monkeypatch, fake_root, NOISE_ONLY_WHEN_WATCHED,
                                        [*args, "--protocol", "corrected"])
    assert status == 2 and err.startswith(f"ERROR: {path}: privacy budget exceeded: after epoch 1/3 ")
    status, out, err, _ = run_driver(tmp_path, capsys, monkeypatch, fake_root, NOISE_ONLY_WHEN_WATCHED, args)
    final = final_metrics(parse_log(out))
    assert status == 0 and final["audit"].startswith("under-noised:") and final["private"] == 0


# Adds half the noise it reports (the audit tests' mechanism).
HALF_NOISE = STANDARD + "\nStandard = DPMechanism\n" + textwrap.dedent(AUDIT_VARIANTS["half_noise"])


def test_an_under_noised_epoch_is_accounted_with_the_noise_measured(tmp_path, capsys, monkeypatch, fake_root):
    """Half the reported noise: `corrected` accounts σ̂ ≈ σ/2 and so fails the budget at once; `mlsbench` runs
    with the benchmark's formula and marks the run not private."""
    status, out, err, path = run_driver(tmp_path, capsys, monkeypatch, fake_root, HALF_NOISE,
                                        [*TINY, "--set", "epochs=2", "--protocol", "corrected"])
    assert status == 2 and "privacy budget exceeded: after epoch 1/2" in err
    accounted = float(err.rsplit("per-epoch sigma accounted ", 1)[1].rstrip(")\n"))
    calibrated = float(re.search(r"sigma=(\d+\.\d+)", out).group(1))
    assert accounted == pytest.approx(calibrated / 2, rel=0.05)
    status, out, err, _ = run_driver(tmp_path, capsys, monkeypatch, fake_root, HALF_NOISE, TINY)
    final = final_metrics(parse_log(out))
    assert status == 0 and final["audit"].startswith("under-noised:") and final["private"] == 0
    assert final["audit_ratio"] == pytest.approx(0.5, rel=0.04)


@pytest.mark.parametrize("audit, accountant, private", [
    ("ok", "benchmark", True), ("ok", "rdp", True), ("off", "rdp", True),
    ("data-dependent", "benchmark", False), ("data-dependent", "rdp", False), ("not-audited", "rdp", False),
    ("under-noised:0.50", "benchmark", False), ("under-noised:0.50", "rdp", True)])
def test_which_runs_are_private(audit, accountant, private):
    assert is_private(audit, accountant) is private


def test_corrected_hands_the_mechanism_poisson_batches(tmp_path, capsys, monkeypatch, fake_root):
    """Under `corrected` the mechanism gets the run's Poisson batches as they come (batch_size 1 of 416 rows:
    about a third are empty, and those never reach it) and the run completes, audited."""
    source = variant(first="print('batch', grads[0].shape[0])")  # its output reaches stderr, marked as its own
    status, out, err, _ = run_driver(tmp_path, capsys, monkeypatch, fake_root, source, [
        *TINY, "--protocol", "corrected", "--set", "epochs=1", "--set", "batch_size=1", "--set", "audit=0"])
    assert status == 0 and all(line.startswith("strategy| batch ") for line in err.splitlines())
    seen = [int(line.split()[-1]) for line in err.splitlines()]
    expected = [batch.numel() for batch in poisson_batches(416, 1 / 416, 416, torch.Generator().manual_seed(42))]
    assert seen == [size for size in expected if size] and len(seen) < len(expected) and max(seen) > 1
    final = final_metrics(parse_log(out))
    assert (final["sampling"], final["accountant"], final["neighbours"]) == ("poisson", "rdp", "add-remove")


def test_a_poisson_update_is_opacus_update(tmp_path, capsys, monkeypatch, fake_root):
    """The driver rescales the mechanism's batch mean by b / E[b]: with no noise and no clipping bite, one step
    of SGD moves the model by lr times the sum of the batch's gradients over E[b], as Opacus's optimiser does
    for Poisson batches."""
    from optrepro.tasks.dpsgd import driver
    from optrepro.tasks.dpsgd.core import MNISTNet
    from optrepro.tasks.dpsgd.vectorised import per_sample_gradients as per_sample

    model, x, y = MNISTNet(), torch.randn(5, 1, 28, 28), torch.arange(5)
    before = [p.detach().clone() for p in model.parameters()]
    grads = per_sample(model, x, y)

    class Mean:
        def clip_and_noise(self, grads, step, epoch):
            return [g.mean(dim=0) for g in grads]

    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    driver.private_step("mean.py", Mean(), model, optimizer, grads, 0, 1, 5 / 8)
    for b, p, g in zip(before, model.parameters(), grads):
        torch.testing.assert_close(b - p.detach(), 0.5 * g.sum(dim=0) / 8)
