"""The train rule's script: records for good and failed runs, none for a killed driver."""

import json
import textwrap

from optrepro.runner import parse_args, run

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


def run_job(tmp_path, body, init="pass"):
    strategy = tmp_path / "s.py"
    strategy.write_text(STRATEGY.format(body=body, init=init))
    run_dir = tmp_path / "run"
    args = parse_args(["--task", "parity", "--benchmark", "n32-k8", "--protocol", "mlsbench", "--strategy",
                       str(strategy), "--seed", "3", "--device", "cpu", "--scale", "tiny", *TINY,
                       "--config", '{"scale": "tiny"}', "--run-dir", str(run_dir)])
    return run(args), run_dir


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
    assert not list(run_dir.glob(".*"))  # no temporary files left


def test_failed_run_is_a_result(tmp_path):
    status, run_dir = run_job(tmp_path, "raise KeyError('no data')")
    record = json.loads((run_dir / "record.json").read_text())
    assert status == 0 and record["status"] == "failed" and record["exit_status"] == 2
    assert record["error"].endswith("make_dataset raised KeyError: 'no data' (s.py:6)")
    assert record["metrics"] == {}


def test_killed_driver_leaves_no_record_so_the_job_reruns(tmp_path):
    status, run_dir = run_job(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert status == 1
    assert not (run_dir / "record.json").exists() and not (run_dir / "run.log").exists()


def test_a_run_whose_loss_is_nan_is_a_failed_run(tmp_path):
    status, run_dir = run_job(tmp_path, GOOD_BODY, init="torch.nn.init.constant_(model[0].weight, float('nan'))")
    record = json.loads((run_dir / "record.json").read_text())
    assert status == 0 and record["exit_status"] == 0 and record["status"] == "failed"
    assert record["error"] == "diverged: loss nan at step 1 (secret 0, order 0)"
    assert "test_accuracy" in record["metrics"]  # the numbers are kept, the run is not ranked
