"""The train rule's script: records for good and failed runs, timed-out and self-killed drivers as failed runs,
none when the runner itself is stopped, and never an orphaned driver."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

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
            "--run-dir", str(tmp_path / "run"), *extra]


def run_job(tmp_path, body, init="pass", extra=()):
    return run(parse_args(runner_args(tmp_path, body, init, extra))), tmp_path / "run"


def record_of(run_dir):
    return json.loads((run_dir / "record.json").read_text())


def processes_with(marker: str) -> list[int]:
    """Live processes (not zombies) whose command line contains `marker`: seen from outside any sandbox, whose
    own process IDs mean nothing here."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if marker in (proc / "cmdline").read_bytes().decode(errors="replace") and \
                    (proc / "stat").read_text().split(") ")[1][0] != "Z":
                found.append(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def gone(marker: str, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not processes_with(marker)


def wait_for(path: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)
    return path.read_text()


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


@pytest.mark.parametrize("body, reason", [
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "killed by SIGKILL (out of memory?)"),
    ("raise KeyboardInterrupt", "interrupted"),
    ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "killed by SIGSEGV"),
])
def test_a_driver_that_dies_of_its_own_doing_is_a_failed_run(tmp_path, body, reason):
    """The strategy's own death (the OOM killer's SIGKILL, a KeyboardInterrupt, a crash) is its run's result."""
    status, run_dir = run_job(tmp_path, body)
    record = record_of(run_dir)
    assert status == 0 and record["status"] == "failed" and record["error"] == reason


def test_a_driver_past_its_time_limit_is_ended_and_recorded(tmp_path):
    """A strategy that never returns, and a child it started: the whole group is ended at the limit."""
    marker = f"{tmp_path}/child"
    body = (f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1000)', "
            f"{marker!r}]); [0 for _ in iter(int, 1)]")
    started = time.monotonic()
    status, run_dir = run_job(tmp_path, body, extra=["--time-limit", "4"])
    record = record_of(run_dir)
    assert status == 0 and record["status"] == "failed" and record["error"] == "timed out after 4 s"
    assert time.monotonic() - started < 4 + 5 + 30  # the limit, the SIGTERM grace, start-up
    assert gone(marker)


def test_the_default_time_limit_is_below_the_job_sizing():
    from optrepro.runner import TIME_LIMIT_SHARE, default_time_limit
    from optrepro.tasks.parity import job_resources

    minutes = job_resources("n32-k8", "mlsbench", [])["runtime"]
    assert default_time_limit("parity", "n32-k8", "mlsbench", []) == int(minutes * 60 * TIME_LIMIT_SHARE)
    assert default_time_limit("parity", "n32-k8", "mlsbench", []) < minutes * 60


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 128 + signal.SIGTERM),
                                            (signal.SIGINT, 128 + signal.SIGINT), (signal.SIGKILL, -signal.SIGKILL)])
def test_a_stopped_runner_leaves_no_record_and_no_orphan(tmp_path, signum, status):
    """scancel (SIGTERM), Ctrl-C (SIGINT), or a kill outright: the job reruns, and its driver is gone too."""
    started = tmp_path / "run" / "started"  # the run directory is the one place a sandboxed driver may write
    body = f"import time; open({str(started)!r}, 'w').write('yes'); time.sleep(1000)"
    runner = subprocess.Popen([sys.executable, "-m", "optrepro.runner", *runner_args(tmp_path, body)],
                              env=dict(os.environ, PYTHONPATH=str(REPO / "workflow")), stderr=subprocess.PIPE,
                              text=True)
    wait_for(started)
    driver = str(tmp_path / "s.py")  # on the driver's command line
    assert processes_with(driver)
    runner.send_signal(signum)
    assert runner.wait(timeout=30) == status
    assert gone(driver)
    assert not (tmp_path / "run" / "record.json").exists() and not (tmp_path / "run" / "run.log").exists()
    if signum != signal.SIGKILL:
        assert f"runner stopped by {signal.Signals(signum).name}: driver ended, no record written" in \
            runner.stderr.read()


def test_a_run_whose_loss_is_nan_is_a_failed_run(tmp_path):
    status, run_dir = run_job(tmp_path, GOOD_BODY, init="torch.nn.init.constant_(model[0].weight, float('nan'))")
    record = json.loads((run_dir / "record.json").read_text())
    assert status == 0 and record["exit_status"] == 0 and record["status"] == "failed"
    assert record["error"] == "diverged: loss nan at step 1 (secret 0, order 0)"
    assert "test_accuracy" in record["metrics"]  # the numbers are kept, the run is not ranked
