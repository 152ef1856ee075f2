"""The CUDA paths against their CPU counterparts (`pytest -m cuda`; skipped without a GPU, see conftest.py).

Bounds, and why:
* parity: the CUDA-graph replay runs the very kernels of the eager CUDA step, so the two are equal bit for bit;
  CUDA against CPU differs only in float32 summation order (matrix products run in full float32 on CUDA:
  PyTorch's default leaves TF32 off for them), so every parameter stays within 1e-4 after 1 and 10 steps,
  the bound the CPU tests use against the original loop.
* DP-SGD per-example gradients: cuDNN may run convolutions in TF32 (PyTorch's default allows it), about three
  decimal digits, so each gradient tensor agrees with the per-example loop within 1 % of its largest entry.
* bilevel toy: float64 on both devices, but CUDA's sin/cos/exp may differ from the CPU's in the last bit, which
  changes the step count at starts that pass within rounding of a saddle (measured on an H200: 25 and 13 of
  1,000 starts for g_pbgd, none beyond 10 for v_pbgd): at most 50 starts differ, the success rate is equal
  and the mean step count agrees within 5 %.
* hyper-cleaning: float32; after a few outer steps losses agree within 1e-3 relative and accuracies within
  0.5 percentage points (two of the 400 test examples). V-PBGD's and G-PBGD's CUDA-graph replay runs the very
  kernels of their eager CUDA step: equal bit for bit.

CPU tests of the same logic: test_parity_batched.py, test_dpsgd_train.py, test_bilevel_toy.py,
test_bilevel_hyperclean.py, and `bench/gpu_check.sh --dry-run` (test_gpu_check.py).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
import yaml

from optrepro.metrics import parse_log
from optrepro.tasks.bilevel import driver as bilevel_driver
from optrepro.tasks.bilevel import methods as bilevel_methods
from optrepro.tasks.bilevel.config import HypercleanConfig
from optrepro.tasks.bilevel.driver import DRIVER as BILEVEL
from optrepro.tasks.bilevel.hyperclean import load_hyperclean_splits, make_model
from optrepro.tasks.bilevel.vectorised import run_toy_vectorised
from optrepro.tasks.dpsgd.core import CIFAR10Net, MNISTNet, compute_per_sample_gradients
from optrepro.tasks.dpsgd.vectorised import per_sample_gradients
from optrepro.tasks.parity.batched import BatchedTrainer, train_batched
from optrepro.tasks.parity.config import resolve_config
from optrepro.tasks.parity.driver import DRIVER as PARITY
from optrepro.tasks.parity.driver import prepare_runs

pytestmark = pytest.mark.cuda

REPO = Path(__file__).resolve().parent.parent
SNAKEFILE = REPO / "workflow" / "Snakefile"
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def parity_runs(strategy: str, benchmark: str = "n64-k8"):
    """Runs prepared on the CPU (so both devices start from the same weights), with a small test set."""
    config = resolve_config(benchmark, "mlsbench", {"num_hidden_secrets": 2, "num_orderings": 2,
                                                    "max_train_examples": 100_000, "test_set_size": 512,
                                                    "max_steps": 120, "log_interval": 20})
    strategy = PARITY.load_strategy(REPO / "strategies" / "parity" / f"{strategy}.py")
    datasets, test_sets, _, _, runs = prepare_runs(strategy, config, 42, CPU)
    return config, datasets, test_sets, runs


def on(device, runs):
    return [replace(run, parameters=[p.to(device) for p in run.parameters]) for run in runs]


def parameters_after(config, datasets, runs, device, steps, cuda_graph=True):
    trainer = BatchedTrainer(on(device, runs), datasets, replace(config, max_steps=steps), device, torch.float32)
    trainer.load_chunk(steps, 1)
    step = trainer.step_function(cuda_graph)
    for _ in range(steps):
        step()
    return trainer.model.flat.cpu()


@pytest.mark.parametrize("strategy", ["default", "cl_cube_clean_noisy"])
def test_parity_cuda_graph_equals_eager_cuda_exactly(strategy):
    config, datasets, test_sets, runs = parity_runs(strategy)
    assert torch.equal(parameters_after(config, datasets, runs, CUDA, 50),
                       parameters_after(config, datasets, runs, CUDA, 50, cuda_graph=False))
    graph = train_batched(on(CUDA, runs), datasets, test_sets, config, CUDA)
    eager = train_batched(on(CUDA, runs), datasets, test_sets, config, CUDA, cuda_graph=False)
    assert graph == eager


@pytest.mark.parametrize("steps", [1, 10])
def test_parity_cuda_tracks_the_cpu(steps):
    config, datasets, _, runs = parity_runs("default")
    difference = (parameters_after(config, datasets, runs, CUDA, steps)
                  - parameters_after(config, datasets, runs, CPU, steps)).abs().max().item()
    assert difference <= 1e-4, difference


@pytest.mark.parametrize("model, channels, side", [(MNISTNet, 1, 28), (CIFAR10Net, 3, 32)])
def test_per_sample_gradients_on_cuda_equal_the_per_example_loop(model, channels, side):
    torch.manual_seed(0)
    net = model().to(CUDA)
    x = torch.randn(16, channels, side, side, device=CUDA)
    y = torch.randint(0, 10, (16,), device=CUDA)
    fast, slow = per_sample_gradients(net, x, y), compute_per_sample_gradients(net, x, y)
    for a, b in zip(fast, slow, strict=True):
        assert a.device.type == "cuda" and a.shape == b.shape
        relative = ((a - b).abs().max() / b.abs().max()).item()
        assert relative <= 1e-2, relative


@pytest.mark.parametrize("exact", [False, True], ids=["mlsbench", "corrected"])
@pytest.mark.parametrize("name", ["v_pbgd", "g_pbgd"])
def test_toy_on_cuda_agrees_with_the_cpu(name, exact):
    strategy = BILEVEL.load_strategy(REPO / "strategies" / "bilevel" / f"{name}.py").get_toy_strategy()
    cpu = run_toy_vectorised(strategy, exact_gradient=exact, device=CPU)
    cuda = run_toy_vectorised(strategy, exact_gradient=exact, device=CUDA)
    differing = [c.run for c, g in zip(cpu.runs, cuda.runs, strict=True) if c.steps != g.steps]
    assert len(differing) <= 50, differing
    assert cpu.metrics["success_rate"] == cuda.metrics["success_rate"]
    assert cuda.metrics["convergence_steps"] == pytest.approx(cpu.metrics["convergence_steps"], rel=0.05)


TINY = HypercleanConfig(train_size=300, val_size=200, test_size=400)


@pytest.mark.parametrize("net, method", [("linear", "v_pbgd"), ("mlp", "g_pbgd"), ("linear", "rhg"),
                                         ("mlp", "t_rhg")])
def test_hyperclean_on_cuda_agrees_with_the_cpu(mnist_root, net, method):
    strategy = BILEVEL.load_strategy(REPO / "strategies" / "bilevel" / f"{method}.py").get_hyperclean_strategy(net)
    strategy = replace(strategy, eval_interval=1, **({"T": 5, "K": 2} if method in ("rhg", "t_rhg") else {}))
    lines = []
    for device in (CPU, CUDA):
        out = io.StringIO()
        bilevel_driver.run_hyperclean(strategy, net, 42, TINY, device=device, protocol="corrected", outer_itr=4,
                                      root=mnist_root, stream=out)
        lines.append([line.fields for line in parse_log(out.getvalue()) if line.kind == "TRAIN_METRICS"])
    assert len(lines[0]) == len(lines[1]) == 4
    for cpu, cuda in zip(*lines):
        assert cuda["train_loss"] == pytest.approx(cpu["train_loss"], rel=1e-3)
        assert cuda["val_loss"] == pytest.approx(cpu["val_loss"], rel=1e-3)
        assert abs(cuda["test_accuracy"] - cpu["test_accuracy"]) <= 0.5


@pytest.mark.parametrize("outer", [2, 30])  # 2: fewer steps than the graph's warm-up
@pytest.mark.parametrize("net, method", [("linear", "v_pbgd"), ("mlp", "g_pbgd")])
def test_pbgd_graph_replay_equals_the_eager_cuda_steps(mnist_root, net, method, outer):
    strategy = BILEVEL.load_strategy(REPO / "strategies" / "bilevel" / f"{method}.py").get_hyperclean_strategy(net)
    strategy = replace(strategy, outer_itr=outer, eval_interval=1)
    runs = []
    for cuda_graph in (True, False):
        splits = load_hyperclean_splits(TINY, 42, CUDA, mnist_root)  # seeds: both models start alike
        model = make_model(net).to(CUDA)
        result = bilevel_methods.run_pbgd(method, strategy, model, *splits, net, corrected=True, on_eval=None,
                                          cuda_graph=cuda_graph)
        records = [{k: v for k, v in asdict(r).items() if k != "runtime_sec"}
                   for r in result.records + result.iterate_records]
        runs.append((records, [p.detach().cpu() for p in model.parameters()]))
    (graph_records, graph_weights), (eager_records, eager_weights) = runs
    assert len(graph_records) == 2 * outer and graph_records == eager_records
    assert all(torch.equal(a, b) for a, b in zip(graph_weights, eager_weights, strict=True))


def test_whole_workflow_with_device_cuda(tmp_path, data_root):
    """Every task, collect and the report through Snakemake with `device: cuda`; every run ok on CUDA."""
    for task in ("parity", "bilevel", "dpsgd"):
        shutil.copytree(REPO / "strategies" / task, tmp_path / "strategies" / task,
                        ignore=shutil.ignore_patterns("__pycache__"))
    quick = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
    config = {**quick, "device": "cuda", "seeds": [42], "strategy_dir": str(tmp_path / "strategies"),
              "data": {"root": str(data_root), "datasets": {"mnist": quick["data"]["datasets"]["mnist"]}}}
    config["tasks"]["parity"].update(benchmarks=["n32-k8"], strategies=["default"])
    config["tasks"]["bilevel"]["strategies"] = ["v_pbgd"]
    config["tasks"]["dpsgd"]["strategies"] = ["standard_dpsgd"]
    (tmp_path / "cuda.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--cores", "8",
                             "--directory", str(tmp_path), "--configfile", str(tmp_path / "cuda.yaml")],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = [json.loads(path.read_text()) for path in (tmp_path / "results").rglob("record.json")]
    assert len(records) == 1 + 3 * 2 + 2  # parity; bilevel 3 benchmarks x 2 protocols; dpsgd 2 protocols
    assert {(r["status"], r["device"]["resolved"], r["device"]["cuda_graphs"]) for r in records} == {
        ("ok", "cuda", True)}, [(r["strategy"], r["error"]) for r in records if r["status"] != "ok"]
    assert (tmp_path / "reports" / "report.html").is_file()
