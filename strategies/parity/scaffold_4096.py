"""`scaffold_4096`: the editable region as shipped in the task scaffold (parity.md §10).

Not a leaderboard baseline. It is the state every agent conversation starts from, and
the effective strategy of the conversations that never edited it (parity.md §11.1-11.3).
Init: the standard one -- Xavier-uniform on both Linear layers (ReLU gain sqrt(2) on the
first, gain 1 on the second), zero biases.
Dataset: the standard random dataset with a fixed n = 4,096: fair bits drawn as int64
from a fresh generator seeded with `seed`, cast to float32, exact parity labels. An
epoch is exactly 32 steps.
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
    n = 4096
    x = torch.randint(0, 2, (n, config.n_features), generator=generator, dtype=torch.int64).to(torch.float32)
    return x, parity_labels(x, secret)


def get_optimizer_config(config: TaskConfig) -> dict[str, float]:
    return {"lr": 1e-3, "wd": 1e-2, "beta1": 0.9, "beta2": 0.999}
