"""`ds_cube16_he_bias`: deepseek-reasoner, first episode, first edit (parity.md §11.4a).

The only deepseek strategy that was tested (Test #1, all three seeds).
Init: He-uniform (Kaiming-uniform, ReLU, fan-in) on the first Linear, Xavier-uniform
(gain 1) on the second; both biases set to the constant 0.01.
Dataset: the 2^K cube of secret patterns, little-endian (bit b of pattern p goes to
secret[b]), tiled 4096 // 2^K = 16 times so row r carries pattern r mod 2^K (4,096 rows).
The non-secret coordinates, in ascending order, come from one (rows, N-K) fair-bit draw
made directly in float32 from a generator seeded with `seed`. Exact parity labels
(positive rate exactly 0.5).
Optimizer: AdamW lr 5e-4, wd 0.0, betas (0.9, 0.999).
"""


def init_model(model: nn.Sequential, config: TaskConfig) -> None:
    for index, layer in enumerate(model):
        if isinstance(layer, nn.Linear):
            if index == 0:
                nn.init.kaiming_uniform_(layer.weight, a=0, mode="fan_in", nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(layer.weight, gain=1.0)
            nn.init.constant_(layer.bias, 0.01)


def make_dataset(secret: tuple[int, ...], config: TaskConfig, seed: int):
    generator = torch.Generator().manual_seed(seed)
    k, n_features = len(secret), config.n_features
    num_patterns = 2 ** k
    repeats = 4096 // num_patterns
    n = num_patterns * repeats
    cube = (torch.arange(num_patterns).unsqueeze(1) >> torch.arange(k)) & 1  # little-endian
    x = torch.zeros(n, n_features, dtype=torch.float32)
    x[:, list(secret)] = cube.repeat(repeats, 1).to(torch.float32)  # row r -> pattern r mod 2^K
    others = [c for c in range(n_features) if c not in secret]
    x[:, others] = torch.randint(0, 2, (n, len(others)), generator=generator, dtype=torch.float32)
    return x, parity_labels(x, secret)


def get_optimizer_config(config: TaskConfig) -> dict[str, float]:
    return {"lr": 5e-4, "wd": 0.0, "beta1": 0.9, "beta2": 0.999}
