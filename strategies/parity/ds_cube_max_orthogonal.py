"""`ds_cube_max_orthogonal`: deepseek-reasoner, second episode's edit (parity.md §11.4c).

The last edit of the conversation (step-1 snapshot); its test was launched and never
returned. Untested.
Init: He-uniform (Kaiming-uniform, ReLU, fan-in) on the first Linear, orthogonal (gain 1)
on the second (a random unit-norm row); both biases zero.
Dataset: at the cap. Each of the 2^K cube patterns (little-endian: bit b of p goes to
secret[b]) gets config.max_train_examples // 2^K rows (50,000 at full scale), patterns
visited p = 0, 1, ...; each row is a full N-vector of fair bits (int64, then float32) from
a generator seeded with `seed`, with the secret coordinates overwritten by the pattern;
the label is the pattern's parity. The rows are then shuffled by a permutation drawn from
the same generator and truncated to the cap (a no-op). 12,800,000 rows, positive rate 0.5.
Caveat: the original built the rows one at a time in a Python loop, which is extremely
slow (its test never returned). Here each pattern's rows come from one (rows, N) draw. That
gives identical values and leaves the generator in the identical state before randperm,
because CPU randint draws its elements serially, one generator word each; checked against
the row-by-row loop. Peak memory is about two copies of x (~6.6 GB at N = 64).
Optimizer: AdamW lr 1e-3, wd 0.0, betas (0.9, 0.99).
"""


def init_model(model: nn.Sequential, config: TaskConfig) -> None:
    for index, layer in enumerate(model):
        if isinstance(layer, nn.Linear):
            if index == 0:
                nn.init.kaiming_uniform_(layer.weight, a=0, mode="fan_in", nonlinearity="relu")
            else:
                nn.init.orthogonal_(layer.weight, gain=1.0)
            nn.init.zeros_(layer.bias)


def make_dataset(secret: tuple[int, ...], config: TaskConfig, seed: int):
    generator = torch.Generator().manual_seed(seed)
    k, n_features = len(secret), config.n_features
    num_patterns = 2 ** k
    per_pattern = config.max_train_examples // num_patterns
    cube = (torch.arange(num_patterns).unsqueeze(1) >> torch.arange(k)) & 1  # little-endian
    columns = list(secret)
    x = torch.empty(num_patterns * per_pattern, n_features, dtype=torch.float32)
    for p in range(num_patterns):
        # Same values and generator order as per_pattern single-row draws of shape (N,).
        rows = torch.randint(0, 2, (per_pattern, n_features), generator=generator, dtype=torch.int64)
        rows[:, columns] = cube[p]
        x[p * per_pattern:(p + 1) * per_pattern] = rows.to(torch.float32)
    y = (cube.sum(dim=1) % 2).to(torch.float32).repeat_interleave(per_pattern)
    order = torch.randperm(x.shape[0], generator=generator)
    x, y = x[order], y[order]
    return x[:config.max_train_examples], y[:config.max_train_examples]


def get_optimizer_config(config: TaskConfig) -> dict[str, float]:
    return {"lr": 1e-3, "wd": 0.0, "beta1": 0.9, "beta2": 0.99}
