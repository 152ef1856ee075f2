"""`gm_cube_tiled_102k`: google--gemini-3.1-pro-preview, first episode (parity.md §11.5a).

Edited in and its test launched, but no result came back. Untested.
Init: the standard one -- Xavier-uniform on both Linear layers (ReLU gain sqrt(2) on the
first, gain 1 on the second), zero biases.
Dataset: one full (102,400, N) block of fair bits drawn directly in float32 from a
generator seeded with `seed`; its secret coordinates are then overwritten with the 2^K
cube (little-endian: bit b of p goes to secret[b]) tiled 400 times, so row r carries
pattern r mod 2^K. Exact parity labels, positive rate 0.5. The size is fixed (400 * 2^K),
not derived from the config.
Optimizer: AdamW lr 5e-3, wd 1e-3, betas (0.9, 0.999).
"""


def init_model(model: nn.Sequential, config: TaskConfig) -> None:
    for index, layer in enumerate(model):
        if isinstance(layer, nn.Linear):
            gain = nn.init.calculate_gain("relu") if index == 0 else 1.0
            nn.init.xavier_uniform_(layer.weight, gain=gain)
            nn.init.zeros_(layer.bias)


def make_dataset(secret: tuple[int, ...], config: TaskConfig, seed: int):
    generator = torch.Generator().manual_seed(seed)
    k = len(secret)
    num_patterns, repeats = 2 ** k, 400
    n = num_patterns * repeats
    x = torch.randint(0, 2, (n, config.n_features), generator=generator, dtype=torch.float32)
    cube = (torch.arange(num_patterns).unsqueeze(1) >> torch.arange(k)) & 1  # little-endian
    x[:, list(secret)] = cube.repeat(repeats, 1).to(torch.float32)  # row r -> pattern r mod 2^K
    return x, parity_labels(x, secret)


def get_optimizer_config(config: TaskConfig) -> dict[str, float]:
    return {"lr": 5e-3, "wd": 1e-3, "beta1": 0.9, "beta2": 0.999}
