"""The workflow on a real one-node SLURM cluster (tests/slurm/cluster.sh) through profiles/slurm, on CPU.

Every Snakemake call runs under `timeout -s KILL` so that a polling problem fails
the test instead of hanging CI.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from optrepro import configuration, plan

REPO = Path(__file__).resolve().parent.parent
SNAKEFILE = REPO / "workflow" / "Snakefile"
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE)]
PROFILE_ARGS = ["--workflow-profile", str(REPO / "profiles" / "slurm"), "--slurm-init-seconds-before-status-checks",
                "2", "--latency-wait", "5", "--jobs", "4"]
SLURM_ARGS = [*PROFILE_ARGS, "--config", "device=cpu"]
BROKEN = '''
def init_model(model, config):
    pass

def make_dataset(secret, config, seed):
    raise ValueError("deliberately broken")

def get_optimizer_config(config):
    return {"lr": 1e-3, "wd": 0.0, "beta1": 0.9, "beta2": 0.999}
'''

pytestmark = [pytest.mark.slurm,
              pytest.mark.skipif(os.geteuid() != 0 and not shutil.which("sbatch"),
                                 reason="needs root to start a SLURM cluster, or a running one")]


@pytest.fixture(scope="module")
def cluster():
    subprocess.run(["bash", str(CLUSTER), "start"], check=True, timeout=900)
    yield
    subprocess.run(["bash", str(CLUSTER), "stop"], check=True, timeout=120)


@pytest.fixture(scope="module")
def strategies(tmp_path_factory):
    root = tmp_path_factory.mktemp("strategies")
    (root / "parity").mkdir()
    for name in ("scaffold_4096", "multi_epoch"):
        shutil.copy(REPO / "strategies" / "parity" / f"{name}.py", root / "parity")
    (root / "parity" / "broken.py").write_text(BROKEN)
    return root


def write_config(workdir: Path, strategies: Path, max_steps: int, names: list[str], **settings) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    config = {"scale": "tiny", "device": "cpu", "seeds": [1, 2], "strategy_dir": str(strategies), **settings,
              "tasks": {
        "parity": {"benchmarks": ["n32-k8"], "protocols": ["mlsbench"], "strategies": names,
                   "reference": names[0],
                   "overrides": {"num_hidden_secrets": 1, "num_orderings": 2, "max_steps": max_steps,
                                 "log_interval": 50, "test_set_size": 512, "max_train_examples": 20000}}}}
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config))
    return workdir / "tiny.yaml"


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    command = ["timeout", "-s", "KILL", "600", *SNAKEMAKE, "--directory", str(workdir),
               "--configfile", str(workdir / "tiny.yaml"), *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if check:
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def sacct_jobs(workdir: Path, since: str) -> list[dict[str, str]]:
    """Allocations SLURM accounted for jobs started from `workdir` since `since`."""
    result = subprocess.run(["sacct", "-X", "-n", "-P", "-S", since, "-o",
                             "JobID,State,ExitCode,WorkDir,AllocTRES,Timelimit"],
                            capture_output=True, text=True, check=True)
    fields = ("id", "state", "exit", "workdir", "tres", "time_limit")
    jobs = [dict(zip(fields, line.split("|"))) for line in result.stdout.splitlines()]
    return [job for job in jobs if Path(job["workdir"]).resolve() == workdir.resolve()]


def comparable(runs: pd.DataFrame) -> pd.DataFrame:
    columns = ["task", "protocol", "benchmark", "strategy", "seed", "status", "error", "test_accuracy",
               "mean_steps", "test_accuracy_std", "strategy_sha256", "driver_sha256"]
    return runs[columns].sort_values(["strategy", "seed"]).reset_index(drop=True)


def test_workflow_through_slurm_equals_a_local_run(cluster, strategies, tmp_path):
    names = ["scaffold_4096", "multi_epoch", "broken"]
    local, remote = tmp_path / "local", tmp_path / "slurm"
    for workdir in (local, remote):
        write_config(workdir, strategies, 100, names)
    snakemake(local, "--cores", "2")
    since = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    snakemake(remote, *SLURM_ARGS)

    jobs = sacct_jobs(remote, since)
    assert len(jobs) == 3, jobs  # one train job per cell (3 strategies, both seeds each); the rest are local rules
    assert {job["state"] for job in jobs} == {"COMPLETED"}
    records = [json.loads(p.read_text()) for p in (remote / "results" / "runs").rglob("record.json")]
    assert all(record["environment"]["host"] for record in records)

    local_runs = pd.read_csv(local / "results" / "tables" / "runs.csv")
    remote_runs = pd.read_csv(remote / "results" / "tables" / "runs.csv")
    pd.testing.assert_frame_equal(comparable(local_runs), comparable(remote_runs))
    failed = remote_runs[remote_runs.status == "failed"]
    assert set(failed.strategy) == {"broken"} and (remote_runs.status == "ok").sum() == 4
    html = (remote / "reports" / "report.html").read_text()
    assert "deliberately broken" in html


def test_cuda_jobs_needing_part_of_a_gpu_share_one_slurm_job_and_its_gpu(cluster, strategies, tmp_path):
    """The test cluster's GPUs are only counted, so these runs fail for want of CUDA (a failed run is a result):
    what is tested is what the profile asks of SLURM."""
    workdir = tmp_path / "gpu"
    config = configuration.load(write_config(workdir, strategies, 100, ["scaffold_4096", "multi_epoch"],
                                           device="cuda", gpu_jobs=2))
    assert plan.gpu_percent(config, "parity", "n32-k8", "mlsbench") == 50
    since = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    snakemake(workdir, *PROFILE_ARGS)

    # two jobs (a cell each, both seeds) at 50 %: one SLURM job with one GPU (group_components 4), both at once,
    # so two CPUs, the memory of two and the time of one (a job's time: its two runs in a row)
    [job] = sacct_jobs(workdir, since)
    tres = dict(item.split("=") for item in job["tres"].split(","))
    assert (job["state"], tres["gres/gpu"], tres["cpu"]) == ("COMPLETED", "1", "2"), job
    sized = plan.job_resources(config, "parity", "n32-k8", "mlsbench")
    assert tres["mem"] == f"{2 * sized['mem_mb']}M"
    assert job["time_limit"] == f"00:{sized['runtime']:02d}:00"
    runs = pd.read_csv(workdir / "results" / "tables" / "runs.csv")
    assert len(runs) == 4 and (runs.status == "failed").all()
    assert runs.error.str.endswith("--device cuda was requested but CUDA is not available.").all()


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def running_jobs(workdir: Path) -> list[str]:
    result = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%Z"], capture_output=True, text=True,
                            check=True)
    return [line.split("|")[0] for line in result.stdout.split()
            if Path(line.split("|")[1]).resolve() == workdir.resolve()]


def test_cancelled_job_is_completed_by_a_rerun_without_recomputing(cluster, strategies, tmp_path):
    """Two cells (a job each, both seeds), one job at a time: the second is cancelled once the first is done;
    the rerun trains that cell again and leaves the first's runs alone."""
    workdir = tmp_path / "cancel"
    write_config(workdir, strategies, 3000, ["scaffold_4096", "multi_epoch"])
    command = ["timeout", "-s", "KILL", "600", *SNAKEMAKE, "--directory", str(workdir), "--configfile",
               str(workdir / "tiny.yaml"), *SLURM_ARGS, "--jobs", "1"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    records = workdir / "results" / "runs"
    wait_for(lambda: any(len(list(cell.glob("seed*/record.json"))) == 2 for cell in records.glob("*/*/*/*")), 300,
             "a first finished cell")
    victims = wait_for(lambda: running_jobs(workdir), 300, "a running train job")
    subprocess.run(["scancel", *victims], check=True)
    output, _ = first.communicate(timeout=1800)
    assert first.returncode != 0, output[-3000:]  # the cancelled job is reported as failed

    finished = {p: p.stat().st_mtime_ns for p in records.rglob("record.json")}
    assert len(finished) == 2  # the first cell's; the cancelled job's outputs are removed, its cell incomplete
    rerun = snakemake(workdir, *SLURM_ARGS)
    after = {p: p.stat().st_mtime_ns for p in records.rglob("record.json")}
    assert len(after) == 4
    assert all(after[p] == mtime for p, mtime in finished.items())  # nothing finished was recomputed
    assert (rerun.stdout + rerun.stderr).count("rule train_parity:") == 1
    runs = pd.read_csv(workdir / "results" / "tables" / "runs.csv")
    assert (runs.status == "ok").all() and len(runs) == 4
