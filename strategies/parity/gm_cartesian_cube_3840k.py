"""`gm_cartesian_cube_3840k`: google--gemini-3.1-pro-preview, second episode (parity.md §11.5b).

The final state of the conversation (step-2 snapshot); tested.
Init: the standard one -- Xavier-uniform on both Linear layers (ReLU gain sqrt(2) on the
first, gain 1 on the second), zero biases.
Dataset: the Cartesian product of 15,000 random backgrounds with the 2^K cube. The
backgrounds are (15,000, N) fair bits drawn as int64 from a generator seeded with `seed`;
each is repeated 2^K times (row = base * 2^K + c), and copy c gets the c-th assignment of
the lexicographic enumeration of {0,1}^K on the secret coordinates, so the first
(smallest-index) secret coordinate is the most significant bit (big-endian). Then cast to
float32, exact parity labels. 3,840,000 rows = 30,000 * 128: one epoch is the whole
full-scale step budget. The 15,000 is fixed, not derived from the config, so a config
with max_train_examples below 3,840,000 rejects this dataset, as the original would.
Optimizer: AdamW lr 2e-3, wd 0.1, betas (0.9, 0.999).
"""


def init_model(model: nn.Sequential, config: TaskConfig) -> None:
    for index, layer in enumerate(model):
        if isinstance(layer, nn.Linear):
            gain = nn.init.calculate_gain("relu") if index == 0 else 1.0
            nn.init.xavier_uniform_(layer.weight, gain=gain)
            nn.init.zeros_(layer.bias)


def make_dataset(secret: tuple[int, ...], config: TaskConfig, seed: int):
    import itertools

    generator = torch.Generator().manual_seed(seed)
    num_bases = 15_000
    bases = torch.randint(0, 2, (num_bases, config.n_features), generator=generator, dtype=torch.int64)
    cube = torch.tensor(list(itertools.product([0, 1], repeat=len(secret))), dtype=torch.int64)  # big-endian
    x = bases.repeat_interleave(cube.shape[0], dim=0)  # base-major: row = base * 2^K + c
    x[:, list(secret)] = cube.repeat(num_bases, 1)
    x = x.to(torch.float32)
    return x, parity_labels(x, secret)


def get_optimizer_config(config: TaskConfig) -> dict[str, float]:
    return {"lr": 2e-3, "wd": 0.1, "beta1": 0.9, "beta2": 0.999}
