"""Batched training equals training the runs one by one with the original loop."""

from dataclasses import replace

import pytest
import torch

from optrepro.strategy import load_strategy
from optrepro.tasks.parity.batched import train_batched, unpack_bits
from optrepro.tasks.parity.core import build_model, train_one_run, strategy_namespace
from optrepro.tasks.parity.driver import STRATEGY_FUNCTIONS, prepare_runs, resolve_config

RAGGED_STRATEGY = '''
def init_model(model, config):
    nn.init.xavier_uniform_(model[0].weight, gain=math.sqrt(2.0))
    nn.init.zeros_(model[0].bias)

def make_dataset(secret, config, seed):
    g = torch.Generator().manual_seed(seed)
    n = 1000 + 37 * (seed % 10)          # 1000 and 1037 rows: short last batches of different sizes
    x = torch.randint(0, 2, (n, config.n_features), generator=g, dtype=torch.int64).float()
    return x, parity_labels(x, secret)

def get_optimizer_config(config):
    return {"lr": 3e-3, "wd": 1e-2, "beta1": 0.9, "beta2": 0.99}
'''


def one_by_one(runs, datasets, test_sets, config, device):
    outcomes = []
    for run in runs:
        model = build_model(config).to(device)
        with torch.no_grad():
            for target, source in zip([model[0].weight, model[0].bias, model[2].weight, model[2].bias],
                                      run.parameters):
                target.copy_(source)
        packed, y = datasets[run.dataset_index]
        x = unpack_bits(packed, config.n_features, torch.float32)
        log = []
        steps, accuracy = train_one_run(model, run.optimizer, x, y.float(), *test_sets[run.dataset_index],
                                        config, run.order_seed, device, lambda *line: log.append(line))
        outcomes.append((steps, accuracy, log))
    return outcomes


@pytest.mark.parametrize("secret_size", [1, 3])
def test_batched_equals_one_by_one(tmp_path, secret_size):
    path = tmp_path / "ragged.py"
    path.write_text(RAGGED_STRATEGY)
    strategy = load_strategy(path, strategy_namespace(), STRATEGY_FUNCTIONS)
    config = replace(resolve_config("n32-k8", "mlsbench"), n_features=12, secret_size=secret_size,
                     num_hidden_secrets=2, num_orderings=2, test_set_size=4096, max_steps=500, log_interval=50,
                     min_steps_before_stop=100, early_stop_windows=2)
    device = torch.device("cpu")
    datasets, test_sets, _, runs = prepare_runs(strategy, config, 7, device)
    batched = train_batched(runs, datasets, test_sets, config, device)
    reference = one_by_one(runs, datasets, test_sets, config, device)
    for got, (steps, accuracy, log) in zip(batched, reference):
        assert got.steps == steps
        assert got.test_accuracy == accuracy
        assert [s for s, _, _ in got.log] == [s for s, _, _ in log]
        assert [l for _, l, _ in got.log] == pytest.approx([l for _, l, _ in log], rel=1e-3, abs=1e-5)  # float32 summation order differs
        assert [a for _, _, a in got.log] == pytest.approx([a for _, _, a in log], abs=1e-9)
    if secret_size == 1:  # the easy problem must exercise early stopping, at different steps
        assert min(o.steps for o in batched) < config.max_steps
