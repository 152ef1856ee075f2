"""`qw_cube_x50_he`: qwen--qwen3.6-plus:free, second episode (parity.md §11.6b).

The final state of the conversation (step-1 snapshot); its test was launched, then the
conversation restarted. Untested.
Init: He-uniform (Kaiming-uniform, ReLU, fan-in) on both Linear layers (bounds sqrt(6/N)
and sqrt(6/512)); both biases zero.
Dataset: the 2^K cube (little-endian: bit b of p goes to secret[b]), grouped: pattern p
occupies rows 50p ... 50p+49, 12,800 rows. The non-secret coordinates, in ascending
order, come from one (12,800, N-K) fair-bit draw as int64, cast to float32, from a
generator seeded with `seed`. Labels are each row's pattern parity (exact; positive rate
0.5). An epoch is exactly 100 steps.
Optimizer: AdamW lr 5e-3, wd 1e-4, betas (0.9, 0.95).
"""


def init_model(model: nn.Sequential, config: TaskConfig) -> None:
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_uniform_(layer.weight, a=0, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(layer.bias)


def make_dataset(secret: tuple[int, ...], config: TaskConfig, seed: int):
    generator = torch.Generator().manual_seed(seed)
    k, n_features = len(secret), config.n_features
    num_patterns, copies = 2 ** k, 50
    n = num_patterns * copies
    cube = (torch.arange(num_patterns).unsqueeze(1) >> torch.arange(k)) & 1  # little-endian
    x = torch.zeros(n, n_features, dtype=torch.float32)
    x[:, list(secret)] = cube.repeat_interleave(copies, dim=0).to(torch.float32)  # rows 50p..50p+49
    others = [c for c in range(n_features) if c not in secret]
    x[:, others] = torch.randint(0, 2, (n, len(others)), generator=generator, dtype=torch.int64).to(torch.float32)
    y = (cube.sum(dim=1) % 2).to(torch.float32).repeat_interleave(copies)
    return x, y


def get_optimizer_config(config: TaskConfig) -> dict[str, float]:
    return {"lr": 5e-3, "wd": 1e-4, "beta1": 0.9, "beta2": 0.95}
