"""Baseline `multi_epoch` (parity.md §10; a leaderboard baseline, "configurable multi-epoch reuse").

Init: the standard one -- Xavier-uniform on both Linear layers (ReLU gain sqrt(2) on the
first, gain 1 on the second), zero biases.
Dataset: the standard random dataset with n = min(10,000, config.max_train_examples):
fair bits drawn as int64 from a fresh generator seeded with `seed`, cast to float32,
exact parity labels. An epoch is 79 steps (78 full batches and one of 16).
Optimizer: AdamW lr 1e-3, wd 1e-2, betas (0.9, 0.999).
"""


def init_model(model: nn.Sequential, config: TaskConfig) -> None:
    for index, layer in enumerate(model):
        if isinstance(layer, nn.Linear):
            gain = nn.init.calculate_gain("relu") if index == 0 else 1.0
            nn.init.xavier_uniform_(layer.weight, gain=gain)
            nn.init.zeros_(layer.bias)


def make_dataset(secret: tuple[int, ...], config: TaskConfig, seed: int):
    generator = torch.Generator().manual_seed(seed)
    n = min(10_000, config.max_train_examples)
    x = torch.randint(0, 2, (n, config.n_features), generator=generator, dtype=torch.int64).to(torch.float32)
    return x, parity_labels(x, secret)


def get_optimizer_config(config: TaskConfig) -> dict[str, float]:
    return {"lr": 1e-3, "wd": 1e-2, "beta1": 0.9, "beta2": 0.999}
