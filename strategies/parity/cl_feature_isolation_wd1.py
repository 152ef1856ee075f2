"""`cl_feature_isolation_wd1`: the first tested version of `cl_feature_isolation` (parity.md §11.8b).

Tested (project seed conversation, claude-opus-4.6). Same init and dataset as the
submitted `cl_feature_isolation`; only the optimizer differs.
Init: Kaiming-normal (fan-in, ReLU gain) on the first Linear, multiplied by sqrt(N/K);
normal with std 1/sqrt(W) on the second; both biases zero.
Dataset: no randomness -- every non-secret coordinate is 0 in every row, and each 2^K cube
pattern (little-endian: bit b of p goes to secret[b]) is repeated max(4, 4096 // 2^K) = 16
times consecutively (pattern-major): 4,096 rows, exact parity labels. Weights on the
non-secret inputs then get no data gradient and decay away under weight decay; test
inputs are uniform on all N coordinates.
Optimizer: AdamW lr 5e-3, wd 1.0, betas (0.9, 0.98).
"""


def init_model(model: nn.Sequential, config: TaskConfig) -> None:
    for index, layer in enumerate(model):
        if isinstance(layer, nn.Linear):
            if index == 0:
                nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
                with torch.no_grad():
                    layer.weight.mul_(math.sqrt(config.n_features / config.secret_size))
            else:
                nn.init.normal_(layer.weight, mean=0.0, std=1.0 / math.sqrt(config.hidden_width))
            nn.init.zeros_(layer.bias)


def make_dataset(secret: tuple[int, ...], config: TaskConfig, seed: int):
    k = len(secret)
    num_patterns = 2 ** k
    copies = max(4, 4096 // num_patterns)
    cube = (torch.arange(num_patterns).unsqueeze(1) >> torch.arange(k)) & 1  # little-endian
    x = torch.zeros(num_patterns * copies, config.n_features, dtype=torch.float32)
    x[:, list(secret)] = cube.repeat_interleave(copies, dim=0).to(torch.float32)  # pattern-major
    return x, parity_labels(x, secret)


def get_optimizer_config(config: TaskConfig) -> dict[str, float]:
    return {"lr": 5e-3, "wd": 1.0, "beta1": 0.9, "beta2": 0.98}
