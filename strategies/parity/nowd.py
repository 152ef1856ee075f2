"""Baseline `nowd` (parity.md §10; a leaderboard baseline): `default` without weight decay.

Init and dataset: as `default` (the standard init; 12,800,000 fair-bit rows at full scale,
drawn as uint8: the original's int64 values, see `default`).
Optimizer: AdamW lr 1e-3, wd 0.0 (the only change from `default`), betas (0.9, 0.999).
"""


def init_model(model: nn.Sequential, config: TaskConfig) -> None:
    for index, layer in enumerate(model):
        if isinstance(layer, nn.Linear):
            gain = nn.init.calculate_gain("relu") if index == 0 else 1.0
            nn.init.xavier_uniform_(layer.weight, gain=gain)
            nn.init.zeros_(layer.bias)


def make_dataset(secret: tuple[int, ...], config: TaskConfig, seed: int):
    generator = torch.Generator().manual_seed(seed)
    n = config.max_train_examples
    x = torch.randint(0, 2, (n, config.n_features), generator=generator, dtype=torch.uint8)
    return x, parity_labels(x, secret)


def get_optimizer_config(config: TaskConfig) -> dict[str, float]:
    return {"lr": 1e-3, "wd": 0.0, "beta1": 0.9, "beta2": 0.999}
