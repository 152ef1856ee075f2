"""optrepro as a Snakemake module of another repository (docs/module.md): the researcher's own strategies and
configuration, every path relative to their working folder."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--cores", "2"]
USER_SNAKEFILE = """
configfile: "config/config.yaml"


module optrepro:
    snakefile:
        {snakefile}
    config:
        config


use rule * from optrepro as optrepro_*
"""
MINE = '''
def init_model(model, config):
    nn.init.normal_(model[0].weight, std=0.5)
    nn.init.zeros_(model[0].bias)

def make_dataset(secret, config, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 2, (2000, config.n_features), generator=g).float()
    return x, parity_labels(x, secret)

def get_optimizer_config(config):
    return {"lr": 3e-3, "wd": 1e-2, "beta1": 0.9, "beta2": 0.99}
'''
CONFIG = {"scale": "tiny", "seeds": [1], "device": "cpu", "strategy_dir": "my_strategies",
          "tasks": {"parity": {"benchmarks": ["n32-k8"], "strategies": ["mine", "default"], "reference": "default",
                               "overrides": {"num_hidden_secrets": 1, "num_orderings": 1, "max_steps": 40,
                                             "log_interval": 20, "test_set_size": 256,
                                             "max_train_examples": 5000}}}}


def user_repository(folder: Path, snakefile: str) -> Path:
    """A researcher's repository: workflow/Snakefile using optrepro, config/config.yaml, one strategy of its own
    and a copy of one shipped strategy."""
    (folder / "workflow").mkdir(parents=True)
    (folder / "workflow" / "Snakefile").write_text(USER_SNAKEFILE.format(snakefile=snakefile))
    (folder / "config").mkdir()
    (folder / "config" / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    strategies = folder / "my_strategies" / "parity"
    strategies.mkdir(parents=True)
    (strategies / "mine.py").write_text(textwrap.dedent(MINE))
    (strategies / "default.py").write_text((REPO / "strategies" / "parity" / "default.py").read_text())
    return folder


def snakemake(workdir: Path, *args: str) -> str:
    result = subprocess.run([*SNAKEMAKE, *args], cwd=workdir, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def test_a_repository_of_its_own_runs_optrepro_as_a_module_from_a_local_path(tmp_path):
    workdir = user_repository(tmp_path / "research", repr(str(REPO / "workflow" / "Snakefile")))
    snakemake(workdir)
    runs = pd.read_csv(workdir / "results" / "tables" / "runs.csv")
    assert sorted(runs.strategy) == ["default", "mine"] and set(runs.status) == {"ok"}
    records = [json.loads(path.read_text()) for path in (workdir / "results" / "runs").rglob("record.json")]
    assert {record["strategy_path"] for record in records} == {f"my_strategies/parity/{name}.py"
                                                               for name in ("default", "mine")}
    assert (workdir / "reports" / "report.html").is_file()
    assert not (REPO / "my_strategies").exists()  # nothing written beside the module's own files


def test_a_tagged_release_of_optrepro_is_a_module_too(tmp_path):
    """`gitfile(...)` with a tag (the local form of the `github(..., tag=...)` that `snakedeploy deploy-workflow`
    writes) resolves every rule: a dry run; the code the rules run is the installed package's."""
    clone = tmp_path / "optrepro"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)], check=True, timeout=600)
    subprocess.run(["git", "-C", str(clone), "tag", "v-test"], check=True)
    source = f'gitfile({str(clone)!r}, path="workflow/Snakefile", tag="v-test")'
    workdir = user_repository(tmp_path / "research", source)
    output = snakemake(workdir, "--dry-run")
    assert "optrepro_train" in output and "optrepro_render_report" in output
    assert "job count" in output.lower() or "Job stats" in output
