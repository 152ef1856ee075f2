"""`cl_cube_clean_noisy`: the project's seed conversation (claude-opus-4.6), first edit (parity.md §11.8a).

Tested.
Init: Kaiming-normal (fan-in, ReLU gain) on the first Linear, then multiplied by 2.0;
normal with std 0.01 on the second; both biases zero.
Dataset: every 2^K cube pattern (little-endian: bit b of p goes to secret[b]) 40 times --
a clean block of 2^K * 20 rows whose non-secret coordinates are all 0, followed by a noisy
block of 2^K * 20 rows whose non-secret coordinates (ascending) come from one fair-bit draw
made directly in float32 from a generator seeded with `seed`. Both blocks are
pattern-major (each pattern's 20 copies consecutive). 10,240 rows, exact parity labels.
Optimizer: AdamW lr 1e-2, wd 1e-3, betas (0.9, 0.98).
"""


def init_model(model: nn.Sequential, config: TaskConfig) -> None:
    for index, layer in enumerate(model):
        if isinstance(layer, nn.Linear):
            if index == 0:
                nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
                with torch.no_grad():
                    layer.weight.mul_(2.0)
            else:
                nn.init.normal_(layer.weight, mean=0.0, std=0.01)
            nn.init.zeros_(layer.bias)


def make_dataset(secret: tuple[int, ...], config: TaskConfig, seed: int):
    generator = torch.Generator().manual_seed(seed)
    k, n_features = len(secret), config.n_features
    num_patterns, copies = 2 ** k, 20
    cube = (torch.arange(num_patterns).unsqueeze(1) >> torch.arange(k)) & 1  # little-endian
    block = cube.repeat_interleave(copies, dim=0).to(torch.float32)  # pattern-major
    others = [c for c in range(n_features) if c not in secret]
    clean = torch.zeros(block.shape[0], n_features, dtype=torch.float32)
    clean[:, list(secret)] = block
    noisy = torch.zeros(block.shape[0], n_features, dtype=torch.float32)
    noisy[:, list(secret)] = block
    noisy[:, others] = torch.randint(0, 2, (block.shape[0], len(others)), generator=generator, dtype=torch.float32)
    x = torch.cat([clean, noisy])
    return x, parity_labels(x, secret)


def get_optimizer_config(config: TaskConfig) -> dict[str, float]:
    return {"lr": 1e-2, "wd": 1e-3, "beta1": 0.9, "beta2": 0.98}
