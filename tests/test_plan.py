"""Configuration checks and the job plan (optrepro.plan), plus the real schema."""

from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from optrepro import plan

REPO = Path(__file__).resolve().parent.parent


def make_config(tmp_path, **task):
    (tmp_path / "strategies" / "parity").mkdir(parents=True, exist_ok=True)
    for name in ("a", "b"):
        (tmp_path / "strategies" / "parity" / f"{name}.py").write_text("")
    settings = {"benchmarks": ["n32-k8"], "protocols": ["mlsbench"], "strategies": "all", **task}
    return {"seeds": [1, 2], "strategy_dir": "strategies", "tasks": {"parity": settings}}


def test_every_unknown_name_is_reported_at_once(tmp_path):
    config = make_config(tmp_path, benchmarks=["n32-k8", "n99-k1"], protocols=["fast"],
                         strategies=["a", "missing"], reference="zzz")
    config["tasks"]["chess"] = {"benchmarks": ["x"]}
    with pytest.raises(plan.ConfigError) as error:
        plan.check_config(config, tmp_path)
    message = str(error.value)
    for expected in ("tasks.chess: unknown task", "unknown benchmark 'n99-k1'", "unknown protocol 'fast'",
                     "no strategy file", "missing.py", "'zzz' is not among"):
        assert expected in message


def test_plan_expands_all_strategies_and_seeds(tmp_path):
    config = make_config(tmp_path, protocols=["mlsbench", "corrected"])
    plan.check_config(config, tmp_path)
    runs = plan.planned_runs(config, tmp_path)
    assert len(runs) == 2 * 2 * 2
    assert runs[0].run_dir == "results/runs/parity/mlsbench/n32-k8/a/seed1"
    assert plan.overrides({"tasks": {"parity": {"overrides": {"max_steps": 10}}}}, "parity") == ["max_steps=10"]


@pytest.mark.parametrize("name", ["config.yaml", "quick.yaml"])
def test_shipped_configs_are_valid(name):
    config = yaml.safe_load((REPO / "config" / name).read_text())
    validate(config, str(REPO / "config" / "schema.yaml"))
    plan.check_config(config, REPO)
    assert plan.planned_runs(config, REPO)


def test_schema_rejects_a_typo(tmp_path):
    config = make_config(tmp_path)
    config["sedes"] = [1]
    with pytest.raises(Exception, match="sedes"):
        validate(config, str(REPO / "config" / "schema.yaml"))


def test_run_folders_follow_the_one_pattern():
    run = plan.PlannedRun("parity", "mlsbench", "n32-k8", "default", 42)
    assert run.run_dir == "results/runs/parity/mlsbench/n32-k8/default/seed42"
    assert plan.RUN_DIR.format(task="parity", protocol="mlsbench", benchmark="n32-k8", strategy="default",
                               seed=42) == run.run_dir


def test_a_training_job_asks_for_a_gpu_only_where_it_uses_cuda():
    assert plan.gpus_per_job({"device": "cpu"}) == 0
    assert plan.gpus_per_job({"device": "cuda"}) == 1
    assert plan.gpus_per_job({"device": "auto"}) == plan.gpus_per_job({}) == int(plan.cuda_visible())
