"""Grouped jobs: a cell's seeds trained in turn in one driver process (optrepro.runner, optrepro.tasks.cli).

Each run's numbers are those of a job of its own, and whatever one run's strategy does (hang, kill the driver,
keep state) ends or touches only that run."""

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest

from optrepro.runner import parse_args, run

REPO = Path(__file__).resolve().parent.parent
TINY_PARITY = ["--set", "num_hidden_secrets=1", "--set", "num_orderings=1", "--set", "max_steps=5",
               "--set", "test_set_size=32"]
# One shipped strategy per engine at a small budget: (task, benchmark, strategy, overrides, datasets).
ENGINES = {
    "parity": ("parity", "n32-k8", "default", TINY_PARITY, []),
    "toy": ("bilevel", "toy-convergence", "v_pbgd", [], []),
    "hyperclean": ("bilevel", "hyperclean-linear", "v_pbgd",
                   ["--set", "max_outer_itr=20"], ["mnist"]),
    "dpsgd": ("dpsgd", "mnist", "standard_dpsgd",
              ["--set", "epochs=1", "--set", "max_train_examples=512", "--set", "max_test_examples=256"], ["mnist"]),
}
# Fields no two runs repeat, masked before logs are compared: timings, and DP-SGD's audit ratio (the audit draws
# its probes from the operating system's randomness, so that a strategy cannot foresee them).
UNREPEATABLE = re.compile(r"\b(\w*(?:runtime|time)\w*|audit_ratio)=\S+")


def runner_args(workdir: Path, task: str, benchmark: str, strategy: str, seeds: list[int], overrides: list[str],
                datasets: list[str], data_root: Path, time_limit: float = 600, sandbox: str = "auto") -> list[str]:
    runs = [option for seed in seeds for option in ("--seed", str(seed), "--run-dir", str(workdir / f"seed{seed}"))]
    return ["--task", task, "--benchmark", benchmark, "--protocol", "mlsbench", "--strategy", strategy, *runs,
            "--device", "cpu", "--scale", "small", *overrides, "--config", "{}", "--data-root", str(data_root),
            *[option for d in datasets for option in ("--dataset", d)], "--time-limit", str(time_limit),
            "--sandbox", sandbox]


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "record.json").read_text())


@pytest.mark.parametrize("engine", ENGINES)
def test_a_runs_numbers_in_a_grouped_job_are_those_of_a_job_of_its_own(engine, tmp_path, data_root):
    """The second seed of a group ran after another run in the same driver process: its log equals the log of
    that seed run alone, bit for bit but for UNREPEATABLE fields (every driver is deterministic on the CPU)."""
    task, benchmark, strategy, overrides, datasets = ENGINES[engine]
    path = str(REPO / "strategies" / task / f"{strategy}.py")
    assert run(parse_args(runner_args(tmp_path / "group", task, benchmark, path, [1, 2], overrides, datasets,
                                      data_root))) == 0
    assert run(parse_args(runner_args(tmp_path / "alone", task, benchmark, path, [2], overrides, datasets,
                                      data_root))) == 0
    grouped, alone = record(tmp_path / "group" / "seed2"), record(tmp_path / "alone" / "seed2")
    assert grouped["status"] == alone["status"] == "ok", grouped["error"]
    assert grouped["seed"] == 2 and "--seed" in grouped["command"] and grouped["command"].count("--seed") == 2
    logs = [UNREPEATABLE.sub(r"\1=<t>", (tmp_path / name / "seed2" / "run.log").read_text())
            for name in ("group", "alone")]
    assert logs[0] == logs[1] and "RUN_BEGIN" not in logs[0]
    assert record(tmp_path / "group" / "seed1")["status"] == "ok"


STRATEGY = textwrap.dedent("""
    import builtins, os, signal, time

    def init_model(model, config):
        pass

    def make_dataset(secret, config, seed):
        run_seed = seed // 10_000
        {body}
        x = torch.randint(0, 2, (64, config.n_features)).float()
        return x, parity_labels(x, secret)

    def get_optimizer_config(config):
        return {{"lr": 1e-3, "wd": 0.0, "beta1": 0.9, "beta2": 0.999}}
    """)


def group_of_three(tmp_path: Path, body: str, **options) -> dict[int, dict]:
    (tmp_path / "s.py").write_text(STRATEGY.format(body=body))
    args = runner_args(tmp_path, "parity", "n32-k8", str(tmp_path / "s.py"), [3, 4, 5], TINY_PARITY, [],
                       tmp_path / "data", **options)
    assert run(parse_args(args)) == 0
    return {seed: record(tmp_path / f"seed{seed}") for seed in (3, 4, 5)}


def test_a_run_that_hangs_times_out_alone_and_the_rest_of_its_group_runs(tmp_path):
    records = group_of_three(tmp_path, "if run_seed == 4: time.sleep(600)", time_limit=30)
    assert records[4]["status"] == "failed" and records[4]["error"] == "timed out after 30 s"
    assert records[3]["status"] == records[5]["status"] == "ok"
    assert records[5]["command"].count("--seed") == 1  # a new driver process for the seeds after the hung one


def test_a_strategy_that_kills_the_driver_fails_its_own_run_only(tmp_path):
    """Without a sandbox a strategy can reach its driver (its parent): that run dies, the next ones start anew."""
    records = group_of_three(tmp_path, "if run_seed == 3: os.kill(os.getppid(), signal.SIGKILL)", sandbox="none")
    assert records[3]["status"] == "failed" and records[3]["error"].startswith("killed by SIGKILL")
    assert records[4]["status"] == records[5]["status"] == "ok"
    assert records[4]["command"][records[4]["command"].index("--seed"):][:4] == ["--seed", "4", "--seed", "5"]


def test_a_run_keeps_nothing_of_the_run_before_it(tmp_path):
    """Each run loads the strategy in a new process: what one run leaves in the interpreter is gone in the next."""
    records = group_of_three(tmp_path, "if getattr(builtins, 'kept', None) is not None: raise ValueError("
                                       "f'kept from {builtins.kept}')\n    builtins.kept = run_seed")
    assert [records[seed]["status"] for seed in (3, 4, 5)] == ["ok"] * 3


def test_a_failure_before_the_first_run_is_every_runs_result(tmp_path):
    (tmp_path / "s.py").write_text(STRATEGY.format(body="pass"))
    args = runner_args(tmp_path, "parity", "n32-k8", str(tmp_path / "s.py"), [3, 4], ["--set", "max_steps=0"], [],
                       tmp_path / "data")
    assert run(parse_args(args)) == 0
    errors = {record(tmp_path / f"seed{seed}")["error"] for seed in (3, 4)}
    assert len(errors) == 1 and "max_steps" in errors.pop()


def test_each_seed_needs_its_own_run_folder(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--task", "parity", "--benchmark", "n32-k8", "--protocol", "mlsbench", "--strategy", "s.py",
                    "--seed", "1", "--seed", "2", "--run-dir", "a", "--data-root", "d", "--time-limit", "9"])
    assert "each with one --run-dir" in capsys.readouterr().err
    assert sys.executable
