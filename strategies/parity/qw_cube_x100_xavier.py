"""`qw_cube_x100_xavier`: qwen--qwen3.6-plus:free, first episode (parity.md §11.6a).

Its test was launched and no result came back. Untested.
Init: the standard one -- Xavier-uniform on both Linear layers (ReLU gain sqrt(2) on the
first, gain 1 on the second), zero biases.
Dataset: the 2^K cube (little-endian: bit b of p goes to secret[b]), grouped: pattern p
occupies rows 100p ... 100p+99, 25,600 rows. Each pattern's block gets its own fresh
(100, N-K) fair-bit draw made directly in float32 from a generator seeded with `seed`,
blocks drawn in pattern order, columns filled into the non-secret coordinates in
ascending order. Labels are the parity of the secret columns (positive rate 0.5).
Optimizer: AdamW lr 5e-3, wd 1e-3, betas (0.9, 0.98).
"""


def init_model(model: nn.Sequential, config: TaskConfig) -> None:
    for index, layer in enumerate(model):
        if isinstance(layer, nn.Linear):
            gain = nn.init.calculate_gain("relu") if index == 0 else 1.0
            nn.init.xavier_uniform_(layer.weight, gain=gain)
            nn.init.zeros_(layer.bias)


def make_dataset(secret: tuple[int, ...], config: TaskConfig, seed: int):
    generator = torch.Generator().manual_seed(seed)
    k, n_features = len(secret), config.n_features
    num_patterns, copies = 2 ** k, 100
    others = [c for c in range(n_features) if c not in secret]
    x = torch.zeros(num_patterns * copies, n_features, dtype=torch.float32)
    for p in range(num_patterns):
        block = slice(p * copies, (p + 1) * copies)
        x[block, list(secret)] = torch.tensor([float((p >> b) & 1) for b in range(k)])  # little-endian
        x[block, others] = torch.randint(0, 2, (copies, len(others)), generator=generator, dtype=torch.float32)
    return x, parity_labels(x, secret)


def get_optimizer_config(config: TaskConfig) -> dict[str, float]:
    return {"lr": 5e-3, "wd": 1e-3, "beta1": 0.9, "beta2": 0.98}
