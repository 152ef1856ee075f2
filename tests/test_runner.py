"""The train rule's script: complete records for good, failed and diverged runs, and the driver's device.
Timeouts, deaths, stops and the sandbox are the fault suite's (tests/faults/)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from optrepro.runner import parse_args, run

REPO = Path(__file__).resolve().parent.parent

STRATEGY = textwrap.dedent("""
    def init_model(model, config):
        {init}

    def make_dataset(secret, config, seed):
        {body}

    def get_optimizer_config(config):
        return {{"lr": 1e-3, "wd": 0.0, "beta1": 0.9, "beta2": 0.999}}
    """)
GOOD_BODY = "x = torch.randint(0, 2, (64, config.n_features)).float(); return x, parity_labels(x, secret)"
TINY = ["--set", "num_hidden_secrets=1", "--set", "num_orderings=1", "--set", "max_steps=5",
        "--set", "test_set_size=32"]


def runner_args(tmp_path, body, init="pass", extra=()):
    strategy = tmp_path / "s.py"
    strategy.write_text(STRATEGY.format(body=body, init=init))
    return ["--task", "parity", "--benchmark", "n32-k8", "--protocol", "mlsbench", "--strategy", str(strategy),
            "--seed", "3", "--device", "cpu", "--scale", "tiny", *TINY, "--config", '{"scale": "tiny"}',
            "--data-root", str(tmp_path / "data"), "--time-limit", "600", "--run-dir", str(tmp_path / "run"), *extra]


def run_job(tmp_path, body, init="pass", extra=()):
    return run(parse_args(runner_args(tmp_path, body, init, extra))), tmp_path / "run"


def record_of(run_dir):
    return json.loads((run_dir / "record.json").read_text())


def test_ok_run_has_a_complete_record(tmp_path):
    status, run_dir = run_job(tmp_path, GOOD_BODY)
    record = json.loads((run_dir / "record.json").read_text())
    assert status == 0 and record["status"] == "ok" and record["error"] is None
    assert record["metrics"]["num_runs"] == 1 and (run_dir / "run.log").read_text().startswith("TASK_CONFIG")
    for key in ("task", "benchmark", "strategy", "seed", "protocol", "scale", "hashes", "config", "git",
                "environment", "device", "start", "end", "wall_seconds", "command"):
        assert key in record
    assert len(record["hashes"]["strategy"]) == 64 and len(record["hashes"]["driver"]) == 64
    assert record["config"]["task_config"]["max_steps"] == 5 and record["device"]["resolved"] == "cpu"
    assert set(record["environment"]["packages"]) >= {"torch", "snakemake", "opacus"}
    assert not list(run_dir.glob(".*")) and not list(run_dir.parent.glob(".*"))  # no temporary files left


def test_failed_run_is_a_result(tmp_path):
    status, run_dir = run_job(tmp_path, "raise KeyError('no data')")
    record = json.loads((run_dir / "record.json").read_text())
    assert status == 0 and record["status"] == "failed" and record["exit_status"] == 2
    assert record["error"].endswith("make_dataset raised KeyError: 'no data' (s.py:6)")
    assert record["metrics"] == {}


def test_a_run_whose_loss_is_nan_is_a_failed_run(tmp_path):
    status, run_dir = run_job(tmp_path, GOOD_BODY, init="torch.nn.init.constant_(model[0].weight, float('nan'))")
    record = json.loads((run_dir / "record.json").read_text())
    assert status == 0 and record["exit_status"] == 0 and record["status"] == "failed"
    assert record["error"] == "diverged: loss nan at step 1 (secret 0, order 0)"
    assert "test_accuracy" in record["metrics"]  # the numbers are kept, the run is not ranked


def test_the_runner_imports_no_torch_and_records_the_drivers_device(tmp_path):
    """The driver resolves `--device auto` and says so before loading the strategy; a strategy's forged device
    line comes later and is ignored. The runner process itself never loads torch (it holds no ~500 MB)."""
    forged = "import sys; print('OPTREPRO_DEVICE {\"resolved\": \"cuda\", \"name\": \"forged\"}', file=sys.stderr)"
    args = runner_args(tmp_path, GOOD_BODY, init=forged)
    args[args.index("--device") + 1] = "auto"
    script = ("import sys; from optrepro.runner import parse_args, run; status = run(parse_args(sys.argv[1:])); "
              "assert 'torch' not in sys.modules, 'the runner imported torch'; sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=900,
                          env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    record = record_of(tmp_path / "run")
    assert record["status"] == "ok" and record["command"][record["command"].index("--device") + 1] == "auto"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert record["device"]["requested"] == "auto" and record["device"]["resolved"] == expected
    assert record["device"]["name"] != "forged"


def test_a_driver_that_fails_before_choosing_a_device_records_none(tmp_path):
    status, run_dir = run_job(tmp_path, GOOD_BODY, extra=["--set", "max_steps=0", "--time-limit", "60"])
    record = record_of(run_dir)
    assert record["status"] == "failed" and "max_steps" in record["error"]
    assert record["device"] == {"requested": "cpu", "resolved": None, "name": None, "cuda": None, "cuda_graphs": None}


def test_whatever_sits_at_the_records_names_the_runner_writes_its_own_files(tmp_path):
    """A folder named record.json (with files in it) and a link named run.log, left by an earlier hostile run,
    neither crash the runner nor pass for outputs: it writes both files."""
    run_dir = tmp_path / "run"
    (run_dir / "record.json").mkdir(parents=True)
    (run_dir / "record.json" / "inside").write_text("x")
    (run_dir / "run.log").symlink_to(tmp_path / "elsewhere")
    status, _ = run_job(tmp_path, GOOD_BODY)
    assert status == 0 and record_of(run_dir)["status"] == "ok"
    assert (run_dir / "run.log").is_file() and not (run_dir / "run.log").is_symlink()
    assert not (tmp_path / "elsewhere").exists()


IMPOSSIBLE_TASK = '''
from optrepro import metrics
from optrepro.tasks import cli, scale
from optrepro.tasks.spec import TaskSpec

TASK = TaskSpec(name="impossible", summary="prints impossible final metrics", benchmarks={"b": {}},
                protocols={"mlsbench": {}}, metrics={"accuracy": "higher"}, ranges={"accuracy": (0, 1)},
                override_fields=(), parse_overrides=lambda items: scale.parse_overrides(items, {}),
                resolve_config=lambda benchmark, protocol, overrides=None: {},
                job_resources=lambda benchmark, protocol, items: {"mem_mb": 100, "runtime": 1},
                driver="optrepro_task_impossible", strategy_functions=("f",), original_names=())
DRIVER = cli.Driver("impossible", dict, lambda strategy, config, seed, device: metrics.emit(
    "FINAL_METRICS", {printed}))
'''


@pytest.mark.parametrize("printed, error", [
    ({"accuracy": 1.5}, "accuracy=1.5 is outside its range [0, 1]"),
    ({"accuracy": 0.5, "status": "ok", "host": "x"}, "metric names that are runs.csv columns: host, status")])
def test_final_metrics_that_are_impossible_or_named_like_table_columns_fail_the_run(tmp_path, monkeypatch, printed,
                                                                                     error):
    (tmp_path / "impossible.py").write_text(IMPOSSIBLE_TASK.replace("{printed}", repr(printed)))
    (tmp_path / "s.py").write_text("def f():\n    pass\n")
    monkeypatch.setenv("OPTREPRO_TASKS", f"impossible={tmp_path / 'impossible.py'}")
    args = ["--task", "impossible", "--benchmark", "b", "--protocol", "mlsbench", "--strategy",
            str(tmp_path / "s.py"), "--seed", "1", "--device", "cpu", "--data-root", str(tmp_path),
            "--time-limit", "600", "--run-dir", str(tmp_path / "run")]
    assert run(parse_args(args)) == 0
    record = record_of(tmp_path / "run")
    assert record["status"] == "failed" and record["error"] == error
    assert record["metrics"] == printed  # kept, for the reader; never ranked


@pytest.mark.parametrize("host_path, note", [
    ("confined", "; confined instead by unshare and setpriv: "),
    ("bare", "; nor confined: unshare and setpriv not installed (Debian package util-linux)")],
    indirect=["host_path"])
def test_a_run_for_which_auto_found_no_sandbox_is_recorded_as_unsandboxed(tmp_path, monkeypatch, host_path, note):
    from optrepro.sandbox import UNSANDBOXED

    monkeypatch.setenv("PATH", host_path)
    status, run_dir = run_job(tmp_path, GOOD_BODY)
    record = record_of(run_dir)
    assert status == 0 and record["status"] == "ok" and record["sandbox"] == UNSANDBOXED
    assert any(line.startswith("ran without a sandbox: bwrap is not installed (Debian package bubblewrap)" + note)
               for line in record["notes"]), record["notes"]
