"""Batched training equals training the runs one by one with the original loop."""

from dataclasses import replace

import pytest
import torch

from optrepro.strategy import load_strategy
from optrepro.tasks.parity.batched import train_batched, train_one_by_one
from optrepro.tasks.parity.driver import STRATEGY_FUNCTIONS, prepare_runs, resolve_config, strategy_namespace

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
    reference = train_one_by_one(runs, datasets, test_sets, config, device)
    for got, expected in zip(batched, reference):
        steps, accuracy, log = expected.steps, expected.test_accuracy, expected.log
        assert got.steps == steps
        assert got.test_accuracy == accuracy
        assert [s for s, _, _ in got.log] == [s for s, _, _ in log]
        # float32 summation order differs
        assert [loss for _, loss, _ in got.log] == pytest.approx([loss for _, loss, _ in log], rel=1e-3, abs=1e-5)
        assert [a for _, _, a in got.log] == pytest.approx([a for _, _, a in log], abs=1e-9)
    if secret_size == 1:  # the easy problem must exercise early stopping, at different steps
        assert min(o.steps for o in batched) < config.max_steps
