"""Configuration checks and the job plan (optrepro.plan), plus the real schema."""

import re
from pathlib import Path

import pytest

from optrepro import plan, tasks
from optrepro.configuration import WorkflowConfigError, load, validate
from optrepro.device import cuda_visible

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def at_repo(monkeypatch):
    """Paths of the shipped configurations are relative to the working folder: the repository root."""
    monkeypatch.chdir(REPO)


def make_config(tmp_path, monkeypatch, **task):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "strategies" / "parity").mkdir(parents=True, exist_ok=True)
    for name in ("a", "b"):
        (tmp_path / "strategies" / "parity" / f"{name}.py").write_text("")
    settings = {"benchmarks": ["n32-k8"], "protocols": ["mlsbench"], "strategies": "all", **task}
    return validate({"seeds": [1, 2], "strategy_dir": "strategies", "tasks": {"parity": settings}})


def test_every_unknown_name_is_reported_at_once(tmp_path, monkeypatch):
    config = make_config(tmp_path, monkeypatch, benchmarks=["n32-k8", "n99-k1"], protocols=["fast"],
                         strategies=["a", "missing"], reference="zzz")
    config["tasks"]["chess"] = {"benchmarks": ["x"]}
    with pytest.raises(WorkflowConfigError) as error:
        plan.check_config(config)
    message = str(error.value)
    for expected in ("tasks.chess: unknown task", "unknown benchmark 'n99-k1'", "unknown protocol 'fast'",
                     "no strategy file", "missing.py", "'zzz' is not among"):
        assert expected in message


def test_plan_expands_all_strategies_and_seeds(tmp_path, monkeypatch):
    config = make_config(tmp_path, monkeypatch, protocols=["mlsbench", "corrected"])
    plan.check_config(config)
    runs = plan.planned_runs(config)
    assert len(runs) == 2 * 2 * 2
    assert runs[0].run_dir == "results/runs/parity/mlsbench/n32-k8/a/seed1"
    assert plan.overrides({"tasks": {"parity": {"overrides": {"max_steps": 10}}}}, "parity") == ["max_steps=10"]


@pytest.mark.parametrize("name", ["config.yaml", "quick.yaml", "verify.yaml"])
def test_shipped_configs_are_valid(name, at_repo):
    config = load(REPO / "config" / name)
    plan.check_config(config)
    assert plan.planned_runs(config)


def test_schema_rejects_a_typo_in_one_line(tmp_path, monkeypatch):
    config = make_config(tmp_path, monkeypatch)
    config["sedes"] = [1]
    with pytest.raises(WorkflowConfigError, match=r"^invalid configuration: .*'sedes'") as error:
        validate(config)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("key, value", [("seeds", [42, 42]), ("strategies", ["default", "default"]),
                                        ("strategies", [".."]), ("strategies", [".hidden"])])
def test_a_seed_or_strategy_listed_twice_or_a_path_like_name_is_refused(tmp_path, monkeypatch, key, value):
    """Each would count one run twice (n = 2 from one run) or put a run folder outside its benchmark's."""
    config = make_config(tmp_path, monkeypatch)
    (config if key == "seeds" else config["tasks"]["parity"])[key] = value
    with pytest.raises(WorkflowConfigError, match=r"^invalid configuration: "):
        validate(config)


def test_the_schema_fills_in_every_default_the_code_reads(tmp_path, monkeypatch):
    config = validate({"tasks": {"parity": {"benchmarks": ["n32-k8"]}}})
    assert (config["scale"], config["device"], config["sandbox"], config["strategy_dir"]) == ("full", "auto", "auto",
                                                                                              "strategies")
    assert (config["seeds"], config["gpu_jobs"], config["gpu_memory_mb"], config["train_threads"]) == (
        [42, 123, 456], 4, 80_000, 1)
    assert config["data"] == {"root": "resources/data", "datasets": {}} and config["report"] == {}
    assert config["tasks"]["parity"] == {"benchmarks": ["n32-k8"], "protocols": ["mlsbench"], "strategies": "all",
                                         "overrides": {}}


def test_run_folders_follow_the_one_pattern():
    run = plan.PlannedRun("parity", "mlsbench", "n32-k8", "default", 42)
    assert run.run_dir == "results/runs/parity/mlsbench/n32-k8/default/seed42"
    assert plan.RUN_DIR.format(task="parity", protocol="mlsbench", benchmark="n32-k8", strategy="default",
                               seed=42) == run.run_dir


def test_a_training_job_asks_for_a_gpu_only_where_it_uses_cuda():
    assert plan.gpu_gres({"device": "cpu"}) == ""
    assert plan.gpu_gres({"device": "cuda"}) == "gpu:1"
    assert plan.gpu_gres({"device": "auto"}) == ("gpu:1" if cuda_visible() else "")


@pytest.mark.parametrize("task, overrides, expected", [
    ("parity", {"max_steps": -5}, "max_steps must be at least 1, got -5"),
    ("parity", {"num_hidden_secrets": -2}, "num_hidden_secrets must be at least 1, got -2"),
    ("parity", {"batch_size": 0}, "batch_size must be at least 1, got 0"),
    ("parity", {"early_stop_acc": 1.5}, "early_stop_acc must lie in [0, 1], got 1.5"),
    ("parity", {"num_hidden_secrets": 10**8}, "exceeds the number of distinct secrets C(32, 8)"),
    ("parity", {"max_train_examples": 10**9}, "exceeds the benchmark's limit 12800000"),
    ("parity", {"max_step": 5}, "expected FIELD=VALUE with FIELD one of"),
    ("parity", {"max_steps": "many"}, "'many' is not a valid int"),
    ("dpsgd", {"epochs": 0}, "epochs and batch_size must be at least 1"),
    ("dpsgd", {"target_delta": 2.0}, "target_delta must lie in (0, 1)"),
    ("bilevel", {"max_outer_itr": 0}, "max_outer_itr must be positive, got 0."),
    ("bilevel", {"pollute_rate": 1.5}, "pollute_rate must lie in [0, 1)"),
    ("bilevel", {"num_runs": 0}, "num_runs must be positive."),
])
def test_overrides_are_checked_at_configuration_time_and_at_driver_start(tmp_path, monkeypatch, task, overrides,
                                                                       expected):
    monkeypatch.chdir(tmp_path)
    benchmarks = {"parity": ["n32-k8"], "dpsgd": ["mnist"], "bilevel": ["toy-convergence", "hyperclean-linear"]}
    (tmp_path / "strategies" / task).mkdir(parents=True)
    (tmp_path / "strategies" / task / "s.py").write_text("")
    config = validate({"seeds": [1], "strategy_dir": "strategies",
                       "tasks": {task: {"benchmarks": benchmarks[task], "protocols": ["mlsbench", "corrected"],
                                        "strategies": "all", "overrides": overrides}}})
    with pytest.raises(WorkflowConfigError) as error:
        plan.check_config(config)
    lines = str(error.value).splitlines()[1:]
    assert len(lines) == 1 and f"tasks.{task}.overrides: " in lines[0] and expected in lines[0]
    spec = tasks.get(task)  # the driver runs the same check before anything else
    with pytest.raises(ValueError, match=re.escape(expected)):
        spec.resolve_config(benchmarks[task][-1] if task == "bilevel" and "pollute" in str(overrides)
                            else benchmarks[task][0], "mlsbench", spec.parse_overrides(plan.overrides(config, task)))


def test_make_verify_runs_only_full_budget_cells_of_the_reference(at_repo):
    """`make verify` is a reproduction: each of its 129 runs at its benchmark's own budget, each cell one the
    reference file judges (a baseline the original reports), with the original's three seeds."""
    config = load(REPO / "config" / "verify.yaml")
    runs = plan.planned_runs(config)
    assert len(runs) == 129 and {run.seed for run in runs} == {42, 123, 456}
    reference = (REPO / config["report"]["reference_file"]).read_text()
    for run in runs:
        spec = tasks.get(run.task)
        assert spec.full_budget(run.benchmark, run.protocol, plan.overrides(config, run.task)), run
        baseline = run.task != "bilevel" or run.strategy in ("v_pbgd", "g_pbgd", "rhg", "t_rhg")
        if run.protocol == "mlsbench" and baseline:
            assert f"{run.task},{run.benchmark},{run.strategy},{run.protocol}," in reference, run


def test_the_shipped_configurations_pass_the_override_checks():
    for name in ("config.yaml", "quick.yaml", "verify.yaml"):
        config = load(REPO / "config" / name)
        for task in config["tasks"]:
            assert plan.override_problems(config, task) == [], (name, task)


def test_fetch_arguments_pass_sources_and_both_manifests():
    config = load(REPO / "config/config.yaml")
    arguments = plan.fetch_arguments(config, "cifar10")
    assert arguments == ["--source=torchvision",
                         "--archive=cifar-10-python.tar.gz="
                         "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"]
    assert sum(a.startswith("--sha256=MNIST/raw/") for a in plan.fetch_arguments(config, "mnist")) == 4


def test_the_full_plan_counts_the_docs_state(at_repo):
    """config/config.yaml: every shipped strategy x benchmark x protocol x seed (docs/reproduction.md)."""
    runs = plan.planned_runs(load(REPO / "config/config.yaml"))
    counts = {task: sum(run.task == task for run in runs) for task in ("parity", "bilevel", "dpsgd")}
    assert counts == {"parity": 14 * 3 * 2 * 3, "bilevel": 20 * 3 * 2 * 3, "dpsgd": 11 * 3 * 2 * 3}
    assert len(runs) == len(set(runs)) == 810


def test_make_plan_prints_runs_and_device_hours_from_the_job_sizing(capsys, at_repo):
    """`python -m optrepro.plan`: one line per task x benchmark x protocol, the same sizing the train rule
    requests, totals per task and overall."""
    assert plan.main(["--configfile", str(REPO / "config/config.yaml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    config = load(REPO / "config/config.yaml")
    rows = plan.costs(config)
    assert len(rows) == 18 and sum(row["runs"] for row in rows) == 810
    toy = next(row for row in rows if (row["benchmark"], row["protocol"]) == ("toy-convergence", "mlsbench"))
    assert toy["runs"] == 60 and toy["runtime_min"] == plan.run_resources(config, "bilevel", "toy-convergence",
                                                                           "mlsbench")["runtime"]
    # a job is a cell: its three seeds' runs one after another
    assert plan.job_resources(config, "bilevel", "toy-convergence", "mlsbench")["runtime"] == 3 * toy["runtime_min"]
    assert toy["hours"] == pytest.approx(60 * toy["runtime_min"] / 60)
    total = next(line for line in lines if line.startswith("total"))
    assert total.split()[1:] == ["810", f"{sum(row['hours'] for row in rows):.1f}"]
    assert [line.split()[0] for line in lines if line.split()[1:2] == ["toy-convergence"]] == ["bilevel", "bilevel"]


def test_plan_of_a_broken_configuration_is_one_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seeds: [1]\ntasks:\n  parity:\n    benchmarks: [n99-k8]\n")
    assert plan.main(["--configfile", str(bad)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("ERROR: invalid configuration:") and "unknown benchmark 'n99-k8'" in error
    assert error.count("\n") == 1


def test_the_time_limit_is_below_the_job_sizing_and_a_configured_one_raises_the_request():
    config = validate({"seeds": [1], "tasks": {"bilevel": {"benchmarks": ["toy-convergence"],
                                                           "strategies": ["v_pbgd"]}}})
    sized = plan.job_resources(config, "bilevel", "toy-convergence", "mlsbench")["runtime"]
    assert sized == tasks.get("bilevel").job_resources("toy-convergence", "mlsbench", [])["runtime"]
    limit = plan.time_limit(config, "bilevel", "toy-convergence", "mlsbench")
    assert limit == int(sized * 60 * plan.TIME_LIMIT_SHARE) < sized * 60
    config["tasks"]["bilevel"]["time_limit_s"] = 60
    assert plan.time_limit(config, "bilevel", "toy-convergence", "mlsbench") == 60
    assert plan.job_resources(config, "bilevel", "toy-convergence", "mlsbench")["runtime"] == sized
    config["tasks"]["bilevel"]["time_limit_s"] = 3600  # 60 min at 0.9 of the job: 67 min requested
    assert plan.job_resources(config, "bilevel", "toy-convergence", "mlsbench")["runtime"] == 67


@pytest.mark.parametrize("bad", ["x_<b>", "tex_$&%#_", "a b", "naïve", "..", ".hidden", "-x"])
def test_strategy_files_with_invalid_names_are_skipped_with_a_warning(tmp_path, bad):
    """Strategy names are data: with `strategies: all` a file whose name is no valid strategy name is left out of
    the plan, and the warning says which and why."""
    (tmp_path / "parity").mkdir()
    for name in ("default", bad):
        (tmp_path / "parity" / f"{name}.py").write_text("")
    config = validate({"seeds": [1], "strategy_dir": str(tmp_path),
                       "tasks": {"parity": {"benchmarks": ["n32-k8"], "protocols": ["mlsbench"]}}})
    plan.check_config(config)
    assert {run.strategy for run in plan.planned_runs(config)} == {"default"}
    [warning] = plan.skipped_strategy_files(config)
    assert warning == (f"{tmp_path / 'parity' / (bad + '.py')}: skipped, {bad!r} is not a valid strategy name "
                       "(a letter or digit, then letters, digits, _ . - only)")


def test_small_jobs_share_a_gpu_and_large_ones_take_more_of_it():
    config = load(REPO / "config" / "config.yaml")
    assert (config["gpu_jobs"], config["gpu_memory_mb"]) == (4, 80_000)  # the schema's defaults
    cuda = {**config, "device": "cuda"}
    assert plan.gpu_percent(cuda, "bilevel", "toy-convergence", "mlsbench") == 25
    assert plan.gpu_percent({**cuda, "gpu_jobs": 1}, "bilevel", "toy-convergence", "mlsbench") == 100
    memory = plan.job_resources(cuda, "parity", "n64-k8", "mlsbench")["mem_mb"]
    small_gpu = {**cuda, "gpu_memory_mb": memory * 2}  # this job's estimate is half of the GPU
    assert plan.gpu_percent(small_gpu, "parity", "n64-k8", "mlsbench") == 50
    assert plan.gpu_percent({**cuda, "gpu_memory_mb": memory // 2}, "parity", "n64-k8", "mlsbench") == 100
    assert plan.gpu_percent({**config, "device": "cpu"}, "parity", "n64-k8", "mlsbench") == 0
    # gpu_jobs small jobs fit in one GPU together, also where 100 / gpu_jobs is not a whole number
    assert 3 * plan.gpu_percent({**cuda, "gpu_jobs": 3}, "bilevel", "toy-convergence", "mlsbench") <= 100


def test_on_a_cluster_only_jobs_holding_the_base_share_are_grouped_to_share_a_gpu():
    config = {**load(REPO / "config" / "config.yaml"), "device": "cuda"}
    assert plan.gpu_share_group(config, "bilevel", "toy-convergence", "mlsbench") == plan.GPU_SHARE_GROUP
    memory = plan.job_resources(config, "parity", "n64-k8", "mlsbench")["mem_mb"]
    assert plan.gpu_share_group({**config, "gpu_memory_mb": memory * 2}, "parity", "n64-k8", "mlsbench") is None
    assert plan.gpu_share_group({**config, "gpu_jobs": 1}, "bilevel", "toy-convergence", "mlsbench") is None
    assert plan.gpu_share_group({**config, "device": "cpu"}, "bilevel", "toy-convergence", "mlsbench") is None
