"""DP-SGD mechanisms in a process of their own (optrepro.strategy_host, kept objects and snapshots).

* every shipped mechanism prints the same lines through the host as in-process, under both protocols, audit
  included (the audit probes fork snapshots of the host; the in-process reference probes deep copies);
* the host's deep-copy snapshots (how it audits on a GPU, where a fork cannot use the device) print the same;
* the three ways a mechanism told the audit from training before (a driver frame on its stack, a deep copy of
  itself, a changed `torch.initial_seed()`) now see a probe exactly as a training call, so a mechanism that adds
  noise only when it recognises an audit is measured un-noised: not private under `mlsbench`, over budget (the
  run fails) under `corrected`;
* a snapshot that dies leaves the live mechanism running: the run completes, not audited, not private;
* the first step is audited too: a threshold that follows the data only there is caught.
"""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest
import torch
from test_dpsgd_driver import STANDARD, TINY, run_driver

from optrepro.metrics import final_metrics, parse_log
from optrepro.strategy_host import StrategyHost
from optrepro.tasks.dpsgd.accounting import BudgetExceeded
from optrepro.tasks.dpsgd.config import resolve_config
from optrepro.tasks.dpsgd.driver import DRIVER, load_data, run_benchmark

REPO = Path(__file__).resolve().parent.parent
MECHANISMS = sorted(path.stem for path in (REPO / "strategies" / "dpsgd").glob("*.py"))
CPU = torch.device("cpu")
SMALL = {"batch_size": 16, "max_train_examples": 160, "max_test_examples": 40, "epochs": 1}


def printed(capsys, strategy, protocol: str, root: Path) -> str:
    """What the run prints, and how it ends: FINAL_METRICS, or the failure (a spend above the target, say)."""
    config = resolve_config("fmnist", protocol, SMALL)
    try:
        run_benchmark(strategy, config, 42, load_data(config, root, CPU), random.Random(5))
        ending = "completed"
    except BudgetExceeded as exc:
        ending = str(exc)
    return capsys.readouterr().out + ending


def hosted(path: Path, snapshot: str | None = None) -> StrategyHost:
    return StrategyHost("dpsgd", path, ("DPMechanism",), CPU, kept=DRIVER.kept_results, snapshot=snapshot)


@pytest.mark.parametrize("protocol", ["mlsbench", "corrected"])
@pytest.mark.parametrize("name", MECHANISMS)
def test_a_mechanism_prints_the_same_lines_in_and_out_of_process(capsys, fake_root, name, protocol):
    path = REPO / "strategies" / "dpsgd" / f"{name}.py"
    local = printed(capsys, DRIVER.load_strategy(path), protocol, fake_root)
    with hosted(path) as host:
        remote = printed(capsys, host, protocol, fake_root)
    assert remote == local and " audit=not-audited " not in local


def test_deep_copy_snapshots_print_the_same_lines(capsys, fake_root):
    path = REPO / "strategies" / "dpsgd" / "adaptive_clip_epoch_decay_ema.py"  # state that changes every step
    local = printed(capsys, DRIVER.load_strategy(path), "mlsbench", fake_root)
    with hosted(path, snapshot="copy") as host:
        assert printed(capsys, host, "mlsbench", fake_root) == local


# A mechanism that adds its noise only when `audited()` says so, each telling the audit from training one way.
DODGES = {
    "stack": """
        def audited(self):
            import inspect
            return any(frame.function == "audit_step" for frame in inspect.stack())
        """,
    "deepcopy": """
        def __deepcopy__(self, memo):
            copied = type(self).__new__(type(self))
            copied.__dict__.update(self.__dict__, probed=True)
            return copied
        def audited(self):
            return getattr(self, "probed", False)
        """,
    "initial_seed": """
        def audited(self):
            self.__dict__.setdefault("seed", torch.initial_seed())
            return torch.initial_seed() != self.seed
        """,
}


def dodge(how: str) -> str:
    source = STANDARD + textwrap.indent(textwrap.dedent(DODGES[how]), "    ")
    return source.replace("noise_std = self.noise_multiplier",
                          "noise_std = float(self.audited()) * self.noise_multiplier")


@pytest.mark.parametrize("how", sorted(DODGES))
def test_an_audit_dodge_is_measured_un_noised(tmp_path, capsys, monkeypatch, fake_root, how):
    source = dodge(how)
    assert "float(self.audited())" in source
    status, out, err, _ = run_driver(tmp_path, capsys, monkeypatch, fake_root, source,
                                     [*TINY, "--set", "epochs=1"])
    final = final_metrics(parse_log(out))
    assert status == 0 and final["audit"].startswith("under-noised:") and final["private"] == 0, err
    status, out, err, _ = run_driver(tmp_path, capsys, monkeypatch, fake_root, source,
                                     [*TINY, "--set", "epochs=1", "--protocol", "corrected"])
    assert status == 2 and "privacy budget exceeded" in err and "FINAL_METRICS" not in out


def test_a_snapshot_that_dies_leaves_the_run_going(tmp_path, capsys, monkeypatch, fake_root):
    """The audit's probes are the only gradients of norm above 100 here; the snapshot that gets one exits."""
    first = "        batch = per_sample_grads[0].shape[0]\n"
    source = STANDARD.replace(first, first + """        if max(float(g.abs().max()) for g in per_sample_grads) > 100:
            import os
            os._exit(3)
""")
    status, out, err, _ = run_driver(tmp_path, capsys, monkeypatch, fake_root, source, [*TINY, "--set", "epochs=1"])
    final = final_metrics(parse_log(out))
    assert status == 0 and final["audit"] == "not-audited" and final["private"] == 0, err


def test_a_threshold_that_moves_with_the_data_only_at_the_start_is_caught(tmp_path, capsys, monkeypatch, fake_root):
    """Its clip threshold follows the batch at step 0 only, as an adaptive one that settles at its clamp within
    epoch 1 does: the epoch's drawn step would see no dependence (51 times in 52), the first step's audit does."""
    source = STANDARD + "\nStandard = DPMechanism\n" + textwrap.dedent("""
        class DPMechanism(Standard):
            def clip_and_noise(self, grads, step, epoch):
                if step == 0:
                    batch = grads[0].shape[0]
                    norms = torch.sqrt(sum(g.reshape(batch, -1).pow(2).sum(dim=1) for g in grads))
                    above = (norms > self.max_grad_norm).float().mean().item()
                    self.max_grad_norm *= math.exp(0.2 * (above - 0.5))
                return super().clip_and_noise(grads, step, epoch)
        """)
    status, out, err, _ = run_driver(tmp_path, capsys, monkeypatch, fake_root, source, [*TINY, "--set", "epochs=1"])
    final = final_metrics(parse_log(out))
    assert status == 0 and final["audit"] == "data-dependent" and final["private"] == 0, err
