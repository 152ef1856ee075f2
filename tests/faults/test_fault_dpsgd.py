"""Every DP-SGD fault of the catalog (`DP_FAULTS`) through the real runner, its default sandbox and the
mechanism's own process, against one honest run of the baseline: each fails with its reason, is not ranked, or
its forgery has no effect (its numbers are the honest run's, bit for bit: the faults draw no random numbers)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from catalog import DP_CLASHING, DP_FAULTS, DP_FORGED, mechanism

REPO = Path(__file__).resolve().parents[2]
RUN = "results/runs/dpsgd/mlsbench/fmnist/s/seed3"
NUMBERS = ("score", "accuracy", "best_accuracy", "epsilon", "epsilon_rdp", "sigma", "sigma_reported")


def run(workdir: Path, source: str, data_root: Path) -> tuple[dict, str, str]:
    """The runner on a DP mechanism at a tiny scale of random Fashion-MNIST images: (record, run.log, job log)."""
    (workdir / "s.py").write_text(source)
    (workdir / RUN).mkdir(parents=True)
    shutil.copytree(data_root, workdir / "data")  # in the folder the run starts from, which its sandbox shows
    command = [sys.executable, "-m", "optrepro.runner", "--task", "dpsgd", "--benchmark", "fmnist", "--protocol",
               "mlsbench", "--strategy", str(workdir / "s.py"), "--seed", "3", "--device", "cpu", "--scale", "tiny",
               "--set", "batch_size=8", "--set", "max_train_examples=416", "--set", "max_test_examples=40",
               "--set", "epochs=1", "--config", '{"scale": "tiny"}', "--data-root", "data",
               "--time-limit", "600", "--run-dir", RUN]
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return (json.loads((workdir / RUN / "record.json").read_text()), (workdir / RUN / "run.log").read_text(),
            done.stderr)


@pytest.fixture(scope="module")
def honest(tmp_path_factory, fake_root):
    record, _, _ = run(tmp_path_factory.mktemp("honest"), mechanism(), fake_root)
    assert record["status"] == "ok" and record["metrics"]["audit"] == "ok" and record["metrics"]["private"] == 1
    return record["metrics"]


@pytest.mark.parametrize("fault", DP_FAULTS, ids=[fault.id for fault in DP_FAULTS])
def test_a_dp_fault_is_contained(tmp_path, fake_root, honest, fault):
    assert fault.source != mechanism()  # each fault changed the baseline
    record, log, job_log = run(tmp_path, fault.source, fake_root)
    assert DP_FORGED not in log and DP_CLASHING not in log  # only the driver writes run.log
    metrics = record.get("metrics") or {}
    if fault.outcome.startswith("failed: "):
        assert record["status"] == "failed" and re.match(fault.outcome.removeprefix("failed: "), record["error"])
        if "forge" in fault.id:
            assert f"strategy| {DP_FORGED}" in job_log
    elif fault.outcome == "honest":
        assert record["status"] == "ok", record["error"]
        assert {key: metrics[key] for key in NUMBERS} == {key: honest[key] for key in NUMBERS}
        assert metrics["audit"] == "ok" and metrics["private"] == 1
    elif fault.outcome == "unranked":
        assert record["status"] == "ok" and metrics["private"] == 0, record
        assert metrics["audit"] == "under-noised:0.00"
    else:
        assert fault.outcome == "private"
        assert record["status"] == "ok" and metrics["audit"] == "ok" and metrics["private"] == 1, record


def test_the_fault_table_has_every_dp_fault():
    section = (REPO / "docs" / "failures.md").read_text().split("## DP-SGD mechanisms")[1]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| DP-SGD")]
    assert [re.search(r"\(`(dp-[a-z-]+)`\)", row).group(1) for row in rows] == [fault.id for fault in DP_FAULTS]
    assert f"Tried {len(DP_FAULTS)}, contained {len(DP_FAULTS)}:" in section
