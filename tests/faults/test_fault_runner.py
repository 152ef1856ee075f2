"""Every runner fault of the catalog through the real runner in its default sandbox (`auto`) on three hosts
(tests/conftest.py's `host_path`: with bubblewrap, confined, bare), plus the runner's own deaths: each ends as
its run's result, contained as far as the host allows, and leaves nothing running."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from catalog import FORGED, GOOD_DATA, RUNNER_FAULTS, Listener, gone, processes_with, strategy

import optrepro
from optrepro.sandbox import UNSANDBOXED

REPO = Path(__file__).resolve().parents[2]
TINY = ["--set", "num_hidden_secrets=1", "--set", "num_orderings=1", "--set", "max_steps=5",
        "--set", "test_set_size=32"]
RUN = "results/runs/parity/mlsbench/n32-k8/s/seed3"
OTHER = "results/runs/parity/mlsbench/n32-k8/other/seed3"
HOSTS = ["bwrap", "confined", "bare"]  # the `host_path` fixture's (tests/conftest.py)


def runner_command(workdir: Path, source: str, *extra: str) -> list[str]:
    """The real runner's command line on a parity strategy (written to `workdir`/s.py), as the train rule's."""
    (workdir / "s.py").write_text(source)
    return [sys.executable, "-m", "optrepro.runner", "--task", "parity", "--benchmark", "n32-k8", "--protocol",
            "mlsbench", "--strategy", str(workdir / "s.py"), "--seed", "3", "--device", "cpu", "--scale",
            "tiny", *TINY, "--config", '{"scale": "tiny"}', "--data-root", "data", "--time-limit", "600",
            "--run-dir", RUN, *extra]


def runner(workdir: Path, source: str, *extra: str, path: str | None = None, **popen) -> subprocess.Popen:
    """The real runner on a parity strategy, from `workdir` as the train rule runs it (with `path` as PATH)."""
    env = dict(os.environ, PATH=path or os.environ["PATH"])
    return subprocess.Popen(runner_command(workdir, source, *extra), cwd=workdir, env=env,
                            stderr=subprocess.PIPE, text=True, **popen)


@pytest.mark.parametrize("host_path", HOSTS, indirect=True)
@pytest.mark.parametrize("fault", RUNNER_FAULTS, ids=[fault.id for fault in RUNNER_FAULTS])
def test_a_strategy_fault_is_its_own_runs_result(tmp_path, fault, host_path, request):
    """Every fault on every kind of host: the outcome the catalog states, and everything contained but what
    a bare host cannot contain (`bare_escape`), which is shown to get through there: such a run is never ranked."""
    host = request.node.callspec.params["host_path"]
    other = tmp_path / OTHER
    other.mkdir(parents=True)
    (other / "record.json").write_text('{"status": "ok"}')
    (tmp_path / RUN).mkdir(parents=True)
    marker, listener = f"optrepro-fault-{tmp_path.name}", Listener()
    planted = Path(optrepro.__file__).parent / f"planted_{marker}.py"
    source = fault.text(run_dir=str(tmp_path / RUN), other=str(other), marker=marker, port=str(listener.port))
    extra = ["--time-limit", str(fault.time_limit)] if fault.time_limit else []
    try:
        process = runner(tmp_path, source, *extra, path=host_path)
        assert process.wait(timeout=900) == 0, process.stderr.read()
        record = json.loads((tmp_path / RUN / "record.json").read_text())
        assert record["sandbox"] == ("bwrap" if host == "bwrap" else UNSANDBOXED)
        error, escaped = fault.expected_error(host), fault.bare_escape if host == "bare" else None
        if error is None:
            assert record["status"] == "ok", record["error"]
            assert record["metrics"]["num_runs"] == (99 if escaped == "run-log" else 1)  # 99: FORGED's
            assert (tmp_path / RUN / "run.log").read_text().startswith("TASK_CONFIG")
        else:
            assert record["status"] == "failed" and re.match(error, record["error"]), record["error"]
        assert gone(marker)
        contained = {"run-log": FORGED not in (tmp_path / RUN / "run.log").read_text(),
                     "other-record": (other / "record.json").read_text() == '{"status": "ok"}',
                     "repository": not planted.exists(), "system": not Path("/var/tmp", marker).exists(),
                     "tmp": not Path("/tmp", marker).exists(),
                     "network": listener.accepted == 0}
        assert contained == {check: check != escaped for check in contained}
    finally:
        planted.unlink(missing_ok=True)
        for folder in ("/tmp", "/var/tmp"):
            Path(folder, marker).unlink(missing_ok=True)
        listener.socket.close()


# A daemon made the classic way: a child that starts a session of its own and forks again, then exits, so that
# the grandchild's parent is gone (init, or the nearest subreaper, adopts it).
DOUBLE_FORK = ("subprocess.run([sys.executable, '-c', 'import os, time\\nif os.fork() == 0:\\n    os.setsid()\\n"
               "    if os.fork() == 0:\\n        time.sleep(999)\\n    os._exit(0)\\n', '{marker}']); ")


@pytest.mark.parametrize("leaves", ["daemon", "double-fork"])
def test_without_a_sandbox_nothing_a_run_started_outlives_it(tmp_path, leaves):
    """Without bubblewrap's process namespace, the runner is the subreaper of everything below it and ends what
    is left when the driver ends: a child in a session of its own, and a double-forked daemon (init's orphan
    otherwise)."""
    marker = f"optrepro-leftover-{tmp_path.name}"
    if leaves == "daemon":
        source = next(f for f in RUNNER_FAULTS if f.id == "daemon").text(run_dir="", other="", marker=marker, port="")
    else:
        source = strategy(DOUBLE_FORK.format(marker=marker) + GOOD_DATA)
    (tmp_path / RUN).mkdir(parents=True)
    process = runner(tmp_path, source, "--sandbox", "none")
    assert process.wait(timeout=900) == 0, process.stderr.read()
    assert json.loads((tmp_path / RUN / "record.json").read_text())["status"] == "ok"
    assert gone(marker)


@pytest.mark.parametrize("host_path", HOSTS, indirect=True)
def test_a_runner_whose_shell_is_killed_outright_ends_too(tmp_path, host_path):
    """kill -9 of a job's shell (no signal reaches the runner): the kernel ends the runner, and with it its
    driver, so that no late record appears for a job Snakemake already counts as failed."""
    (tmp_path / RUN).mkdir(parents=True)
    inner = runner_command(tmp_path, strategy("time.sleep(999)"))
    shell = subprocess.Popen(["bash", "-c", " ".join(map(shlex.quote, inner)) + "; true"], cwd=tmp_path,
                             stderr=subprocess.DEVNULL, env=dict(os.environ, PATH=host_path))
    deadline = time.monotonic() + 600  # a safety net
    while not processes_with(str(tmp_path / "s.py")) or len(processes_with(str(tmp_path / "s.py"))) < 3:
        assert time.monotonic() < deadline, "runner, driver and strategy never all started"
        time.sleep(0.1)
    shell.kill()
    shell.wait()
    assert gone(str(tmp_path / "s.py"))
    assert not (tmp_path / RUN / "record.json").exists()


@pytest.mark.parametrize("host_path", HOSTS, indirect=True)
@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 128 + signal.SIGTERM),
                                            (signal.SIGINT, 128 + signal.SIGINT), (signal.SIGKILL, -signal.SIGKILL)])
def test_a_stopped_runner_leaves_no_record_and_no_orphan(tmp_path, signum, status, host_path):
    """scancel (SIGTERM), Ctrl-C (SIGINT), a kill outright: no record, so the job reruns; no driver left."""
    (tmp_path / RUN).mkdir(parents=True)
    process = runner(tmp_path, strategy("time.sleep(999)"), path=host_path)
    deadline = time.monotonic() + 600  # a safety net
    while not any("strategy_host" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
                  for pid in processes_with(str(tmp_path / "s.py"))):
        assert time.monotonic() < deadline and process.poll() is None, "the strategy's process never started"
        time.sleep(0.1)
    time.sleep(1)  # into make_dataset's sleep
    process.send_signal(signum)
    assert process.wait(timeout=300) == status
    assert gone(str(tmp_path / "s.py"))
    assert not (tmp_path / RUN / "record.json").exists() and not (tmp_path / RUN / "run.log").exists()


def fake_dataset(root: Path, status: str = "ok") -> Path:
    """A fetched dataset as `optrepro.data` leaves it: folder, recorded manifest, status."""
    from optrepro.data.manifest import manifest_path, status_path
    from optrepro.files import sha256_file, write_json_atomic

    raw = root / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-labels-idx1-ubyte").write_bytes(bytes(range(10)))
    write_json_atomic(manifest_path(root, "mnist"), {"dataset": "mnist", "archives": {}, "files": {
        "MNIST/raw/train-labels-idx1-ubyte": sha256_file(raw / "train-labels-idx1-ubyte")}})
    write_json_atomic(status_path(root, "mnist"), {"status": status, "error": None if status == "ok" else
                                                   "could not fetch mnist: torchvision: Connection refused"})
    return raw / "train-labels-idx1-ubyte"


@pytest.mark.parametrize("status, change, error", [
    ("ok", True, "dataset mnist changed after fetch: MNIST/raw/train-labels-idx1-ubyte"),
    ("failed", False, "dataset mnist unavailable: could not fetch mnist: torchvision: Connection refused")])
def test_data_that_changed_or_never_came_fails_the_run_before_the_driver_starts(tmp_path, status, change, error):
    data = fake_dataset(tmp_path / "data", status)
    if change:
        data.write_bytes(bytes(range(1, 11)))
    (tmp_path / RUN).mkdir(parents=True)
    command = [sys.executable, "-m", "optrepro.runner", "--task", "dpsgd", "--benchmark", "mnist", "--protocol",
               "mlsbench", "--strategy", str(REPO / "strategies/dpsgd/standard_dpsgd.py"), "--seed", "1",
               "--device", "cpu", "--data-root", str(tmp_path / "data"), "--dataset", "mnist", "--time-limit", "600",
               "--run-dir", RUN]
    result = subprocess.run(command, cwd=tmp_path, env=dict(os.environ),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / RUN / "record.json").read_text())
    assert record["status"] == "failed" and record["error"] == error
    assert (tmp_path / RUN / "run.log").read_text() == ""  # the driver never ran


def test_the_good_strategy_of_the_catalog_is_good(tmp_path):
    """The faults differ from a working strategy only in what they do wrong."""
    (tmp_path / RUN).mkdir(parents=True)
    process = runner(tmp_path, strategy(GOOD_DATA))
    assert process.wait(timeout=900) == 0
    assert json.loads((tmp_path / RUN / "record.json").read_text())["status"] == "ok"


def test_the_fault_table_names_every_fault_and_counts_them():
    section = (REPO / "docs" / "failures.md").read_text().split("## DP-SGD mechanisms")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| fault")]
    for fault in RUNNER_FAULTS:
        assert f"(`{fault.id}`)" in section, fault.id
    escapes = [fault for fault in RUNNER_FAULTS if fault.bare_escape]
    for fault in escapes:
        row = next(row for row in rows if f"(`{fault.id}`)" in row)
        assert "bare host: gets through, the run unranked" in row, fault.id
    assert f"Tried {len(rows)}, contained {len(rows)} with bubblewrap; confined, the same; on a bare host " \
           f"{len(escapes)} get through, their runs never ranked:" in section


def test_data_changed_during_a_run_is_noted_and_hashed_as_it_is_after_it(tmp_path):
    """A trusted run (`sandbox: none`) whose strategy rewrites a dataset file: the record holds that file's
    sha256 as it is after the run, with a note that it differs from its fetched manifest."""
    from optrepro.files import sha256_file

    data = fake_dataset(tmp_path / "data")
    (tmp_path / RUN).mkdir(parents=True)
    source = strategy(f"open({str(data)!r}, 'wb').write(bytes(range(1, 11))); " + GOOD_DATA)
    process = runner(tmp_path, source, "--sandbox", "none", "--data-root", str(tmp_path / "data"),
                     "--dataset", "mnist")
    assert process.wait(timeout=900) == 0, process.stderr.read()
    record = json.loads((tmp_path / RUN / "record.json").read_text())
    assert record["status"] == "ok"
    assert record["hashes"]["data"] == {str(data): sha256_file(data)}
    assert ("dataset mnist differs from its fetched manifest after the run: MNIST/raw/train-labels-idx1-ubyte"
            in record["notes"])
