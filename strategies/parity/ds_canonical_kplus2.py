"""`ds_canonical_kplus2`: deepseek-reasoner, first episode, third step (parity.md §11.4b).

Recorded in the step-3 snapshot; its test was launched but returned nothing. Untested.
Init: the standard one -- Xavier-uniform on both Linear layers (ReLU gain sqrt(2) on the
first, gain 1 on the second), zero biases.
Dataset: K+2 secret patterns -- all zeros, all ones, then the K one-hot patterns (the
b-th one sets secret[b]) -- tiled 2048 // (K+2) times, row r carrying pattern r mod (K+2):
2,040 rows for K = 8. The non-secret coordinates, in ascending order, come from one
(rows, N-K) fair-bit draw made directly in float32 from a generator seeded with `seed`.
Exact parity labels; for K = 8 the positive rate is 0.8.
Optimizer: AdamW lr 1e-3, wd 1e-4, betas (0.9, 0.999).
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
    patterns = torch.cat([torch.zeros(1, k), torch.ones(1, k), torch.eye(k)])
    repeats = 2048 // patterns.shape[0]
    n = patterns.shape[0] * repeats
    x = torch.zeros(n, n_features, dtype=torch.float32)
    x[:, list(secret)] = patterns.repeat(repeats, 1)  # row r -> pattern r mod (K+2)
    others = [c for c in range(n_features) if c not in secret]
    x[:, others] = torch.randint(0, 2, (n, len(others)), generator=generator, dtype=torch.float32)
    return x, parity_labels(x, secret)


def get_optimizer_config(config: TaskConfig) -> dict[str, float]:
    return {"lr": 1e-3, "wd": 1e-4, "beta1": 0.9, "beta2": 0.999}
