"""Faults through the real Snakemake workflow: hostile strategies in one plan, strategy files with names that are
not names, a fetch that fails and then succeeds, an invalid configuration. The workflow completes (or refuses to
start, for the configuration) and the report says what failed and why."""

from __future__ import annotations

import functools
import gzip
import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
import yaml
from catalog import FORGED, RUNNER_FAULTS, Listener, gone, processes_with, strategy

import optrepro
from optrepro.data.sources import MNIST_SHA256
from optrepro.files import sha256_file
from optrepro.sandbox import unavailable

pytestmark = pytest.mark.workflow
REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "workflow" / "Snakefile"
LIMIT_S = 60  # seconds a run of the hostile workflow may take
TINY_PARITY = {"num_hidden_secrets": 1, "num_orderings": 1, "max_steps": 20, "log_interval": 10,
               "test_set_size": 64, "max_train_examples": 5000}


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--cores", "2",
                             "--directory", str(workdir), "--configfile", str(workdir / "faults.yaml"), *args],
                            capture_output=True, text=True, timeout=1800)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def parity_config(workdir: Path, strategies, **task) -> None:
    config = {"scale": "tiny", "seeds": [1], "strategy_dir": str(workdir / "strategies"),
              "tasks": {"parity": {"benchmarks": ["n32-k8"], "protocols": ["mlsbench"], "strategies": strategies,
                                   "overrides": TINY_PARITY, **task}}}
    (workdir / "faults.yaml").write_text(yaml.safe_dump(config))


def workflow_error(fault) -> str | None:
    """The error the catalog expects of `fault` in this workflow: its file is `<id>.py`, its limit LIMIT_S."""
    if fault.time_limit:
        return rf"timed out after {LIMIT_S} s$"
    return fault.error and fault.error.replace(r"s\.py", re.escape(f"{fault.id}.py"))


def test_one_workflow_of_every_hostile_strategy_and_a_good_one_ranks_the_good_one(tmp_path):
    """Every runner fault of the catalog beside one good strategy, in one plan: the workflow completes and
    renders the report; the good strategy's run is ranked; each hostile run is failed with its reason (listed
    in the report) or ok with its own real numbers; nothing reached another run, the repository, /tmp, /var/tmp
    or the network, and nothing is left running."""
    if reason := unavailable():
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the sandbox tests: {reason}")
        pytest.skip(reason)
    folder = tmp_path / "strategies" / "parity"
    folder.mkdir(parents=True)
    other = tmp_path / "results/runs/parity/mlsbench/n32-k8/earlier/seed1/record.json"  # a run of an earlier plan
    other.parent.mkdir(parents=True)
    other.write_text('{"status": "ok"}')
    listener, markers = Listener(), {}
    (folder / "good.py").write_text(strategy())
    for fault in RUNNER_FAULTS:
        markers[fault.id] = f"optrepro-hostile-{fault.id}-{tmp_path.name}"
        run_dir = tmp_path / f"results/runs/parity/mlsbench/n32-k8/{fault.id}/seed1"
        (folder / f"{fault.id}.py").write_text(fault.text(run_dir=str(run_dir), other=str(other.parent),
                                                          marker=markers[fault.id], port=str(listener.port)))
    # The limit only has to end the two that never return; it is generous so that the rest finish within it on a
    # busy machine.
    parity_config(tmp_path, ["good", *(fault.id for fault in RUNNER_FAULTS)], reference="good",
                  time_limit_s=LIMIT_S)
    try:
        snakemake(tmp_path)
    finally:
        listener.socket.close()
    runs = pd.read_csv(tmp_path / "results/tables/runs.csv").set_index("strategy")
    page = (tmp_path / "reports/report.html").read_text()
    assert runs.loc["good", "status"] == "ok" and set(runs["sandbox"]) == {"bwrap"}
    for fault in RUNNER_FAULTS:
        error = workflow_error(fault)
        run = runs.loc[fault.id]
        if error is None:
            assert run["status"] == "ok" and run["num_runs"] == 1, (fault.id, run["error"])
        else:
            assert run["status"] == "failed" and re.match(error, run["error"]), (fault.id, run["error"])
            assert run["error"] in html.unescape(page), fault.id
    summary = pd.read_csv(tmp_path / "results/tables/summary.csv", keep_default_na=False)
    good = summary[(summary["strategy"] == "good") & (summary["metric"] == "test_accuracy")]
    assert len(good) == 1 and good["excluded"].iloc[0] == "" and int(good["n"].iloc[0]) == 1  # ranked
    assert not any(FORGED in log.read_text() for log in (tmp_path / "results/runs").rglob("run.log"))
    assert other.read_text() == '{"status": "ok"}' and listener.accepted == 0
    assert all(gone(marker) and not Path("/tmp", marker).exists() and not Path("/var/tmp", marker).exists()
               for marker in markers.values())
    assert not list(Path(optrepro.__file__).parent.glob(f"planted_optrepro-hostile-*-{tmp_path.name}.py"))
    assert f"sandbox bwrap: {len(RUNNER_FAULTS) + 1} runs" in page


@pytest.mark.parametrize("bad", ["x_<b>", "tex_$&%#_"])
def test_a_strategy_file_whose_name_is_no_name_is_skipped_and_reported(tmp_path, bad):
    folder = tmp_path / "strategies" / "parity"
    folder.mkdir(parents=True)
    for name in ("good", bad):
        (folder / f"{name}.py").write_text(strategy())
    parity_config(tmp_path, "all", reference="good")
    result = snakemake(tmp_path)
    assert f"WARNING: {folder / (bad + '.py')}: skipped" in result.stderr
    runs = pd.read_csv(tmp_path / "results/tables/runs.csv")
    assert runs["strategy"].tolist() == ["good"] and runs["status"].tolist() == ["ok"]
    page = (tmp_path / "reports/report.md").read_text()
    assert "Left out of the plan" in page and "is not a valid strategy name" in page


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_failed_fetch_is_retried_with_exactly_the_runs_that_lacked_it(tmp_path, mnist_root):
    """First call: the mirror is down, the hyper-cleaning run is recorded as lacking MNIST, the toy run is ok.
    Second call, the mirror up: MNIST is fetched and exactly that run reruns; then nothing is left to do."""
    served = tmp_path / "mirror"
    served.mkdir()
    archives, md5 = {}, {}
    for relative in MNIST_SHA256:
        name = Path(relative).name + ".gz"
        (served / name).write_bytes(gzip.compress((mnist_root / relative).read_bytes(), mtime=0))
        archives[name] = sha256_file(served / name)
        md5[name] = __import__("hashlib").md5((served / name).read_bytes()).hexdigest()
    port = free_port()
    shutil.copytree(REPO / "strategies" / "bilevel", tmp_path / "strategies" / "bilevel",
                    ignore=shutil.ignore_patterns("__pycache__"))
    config = {"scale": "tiny", "seeds": [1], "strategy_dir": str(tmp_path / "strategies"),
              "data": {"root": "data", "datasets": {"mnist": {
                  "sources": [f"torchvision=http://127.0.0.1:{port}/"], "archives": archives, "md5": md5,
                  "sha256": MNIST_SHA256}}},
              "tasks": {"bilevel": {"benchmarks": ["toy-convergence", "hyperclean-linear"], "protocols": ["mlsbench"],
                                    "strategies": ["v_pbgd"], "overrides": {"max_outer_itr": 2}}}}
    (tmp_path / "faults.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path)
    records = {b: tmp_path / f"results/runs/bilevel/mlsbench/{b}/v_pbgd/seed1/record.json"
               for b in ("toy-convergence", "hyperclean-linear")}
    first = {b: json.loads(path.read_text()) for b, path in records.items()}
    assert first["toy-convergence"]["status"] == "ok"
    assert first["hyperclean-linear"]["error"].startswith("dataset mnist unavailable: could not fetch mnist")
    toy_written = records["toy-convergence"].stat().st_mtime_ns

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = snakemake(tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert "fetch of mnist failed last time; trying again" in result.stderr
    output = result.stdout + result.stderr
    assert output.count("rule train_bilevel:") == 1, output[-3000:]
    assert "--benchmark hyperclean-linear" in output and "--benchmark toy-convergence" not in output
    assert json.loads(records["hyperclean-linear"].read_text())["status"] == "ok"
    assert records["toy-convergence"].stat().st_mtime_ns == toy_written
    assert "Nothing to be done" in snakemake(tmp_path, "-n").stdout + snakemake(tmp_path, "-n").stderr


def test_an_invalid_configuration_is_refused_with_one_line_per_problem(tmp_path):
    (tmp_path / "strategies" / "parity").mkdir(parents=True)
    (tmp_path / "strategies" / "parity" / "good.py").write_text(strategy())
    parity_config(tmp_path, ["good", "absent"], reference="nobody")
    config = yaml.safe_load((tmp_path / "faults.yaml").read_text())
    config["tasks"]["parity"]["benchmarks"] = ["n32-k8", "n99-k8"]
    (tmp_path / "faults.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, check=False)
    assert result.returncode != 0
    for problem in ("unknown benchmark 'n99-k8'", "no strategy file", "'nobody' is not among the task's strategies"):
        assert problem in result.stderr
    assert not (tmp_path / "results").exists()


def test_ctrl_c_stops_the_workflow_and_leaves_no_driver(tmp_path):
    """Ctrl-C in a terminal sends SIGINT to snakemake's whole process group: a strategy that never returns does
    not hold the workflow, and nothing of the run is left behind; the interrupted run has no record. (The waits
    are safety nets for a stuck test, not a speed requirement.)"""
    folder = tmp_path / "strategies" / "parity"
    folder.mkdir(parents=True)
    marker = f"optrepro-ctrl-c-{tmp_path.name}"
    (folder / "loops.py").write_text(strategy(f"subprocess.Popen([sys.executable, '-c', 'import time; "
                                              f"time.sleep(999)', {marker!r}]); time.sleep(999)"))
    parity_config(tmp_path, ["loops"])
    process = subprocess.Popen([sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--cores", "1",
                                "--directory", str(tmp_path), "--configfile", str(tmp_path / "faults.yaml")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 900
    while not processes_with(marker):
        assert time.monotonic() < deadline and process.poll() is None, "the strategy never started"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=600) != 0
    assert gone(marker)
    assert not (tmp_path / "results/runs/parity/mlsbench/n32-k8/loops/seed1/record.json").exists()
