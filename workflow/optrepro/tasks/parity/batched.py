"""Train every run of one parity benchmark as one batched computation.

Why: the original trains 15 (or 100) tiny MLPs one after another, which
leaves a GPU idle. Here the runs' weights are stacked along a leading run
axis and one step of all runs is a handful of batched kernels:

* training sets are stored as packed bits on the device (12.8M rows x 64
  features is 102 MB, not 3.3 GB of float32) and each step gathers and
  unpacks its rows there;
* every run keeps its own data order, drawn from its own CPU generator
  exactly as the original draws it, including the short last batch of an
  epoch (padded rows carry zero weight);
* forward, backward (written out, mirroring autograd's formulas for
  Linear/ReLU/Sigmoid/BCELoss) and AdamW (PyTorch's single-tensor update,
  with per-run hyper-parameters) run on the stacked tensors;
* early stopping is decided per run on the device; a stopped run's
  parameters are frozen by a zero learning rate. The host synchronises only
  at log events to see whether every run has stopped.

The result equals `core.train_one_run` for each run (tests/test_parity_batched.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .core import OptimizerConfig, TaskConfig, is_log_step

BCE_EPSILON = 1e-12  # ATen's clamp in binary_cross_entropy_backward
ADAM_EPS = 1e-8
STEPS_PER_CHUNK = 1000  # data-order indices are drawn on the host and shipped this many steps at a time


def pack_bits(x: torch.Tensor, rows_per_block: int = 1 << 20) -> torch.Tensor:
    """{0,1} float rows -> uint8 rows of ceil(N/8) bytes (little-endian bit order), in blocks to bound memory."""
    blocks = [np.packbits(x[start:start + rows_per_block].to(torch.uint8).numpy(), axis=1, bitorder="little")
              for start in range(0, x.shape[0], rows_per_block)]
    return torch.from_numpy(np.concatenate(blocks))


def unpack_bits(packed: torch.Tensor, n_features: int, dtype: torch.dtype) -> torch.Tensor:
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
    bits = (packed.unsqueeze(-1) >> shifts) & 1
    return bits.reshape(*packed.shape[:-1], -1)[..., :n_features].to(dtype)


@dataclass
class PreparedRun:
    """One run after the original's start-up (seeded, built, `init_model` applied, optimizer checked)."""

    parameters: list[torch.Tensor]  # W1 [W, N], b1 [W], W2 [1, W], b2 [1], on the device
    optimizer: OptimizerConfig
    dataset_index: int
    order_seed: int


@dataclass
class RunOutcome:
    steps: int
    test_accuracy: float
    log: list[tuple[int, float, float]]  # (step, window loss, window accuracy) per TRAIN_METRICS line


class OrderStream:
    """One run's batches: a fresh permutation of its n rows per epoch, sliced into batches, last one short."""

    def __init__(self, n: int, seed: int, batch_size: int, offset: int):
        self.n, self.batch_size, self.offset = n, batch_size, offset
        self.generator = torch.Generator().manual_seed(seed)
        self.batches = torch.empty(0, batch_size, dtype=torch.int64)
        self.counts = torch.empty(0, dtype=torch.int64)
        self.position = 0

    def _new_epoch(self) -> None:
        permutation = torch.randperm(self.n, generator=self.generator) + self.offset
        n_batches = -(-self.n // self.batch_size)
        padded = torch.full((n_batches * self.batch_size,), self.offset, dtype=torch.int64)
        padded[:self.n] = permutation
        self.batches = padded.view(n_batches, self.batch_size)
        self.counts = torch.full((n_batches,), self.batch_size, dtype=torch.int64)
        self.counts[-1] = self.n - (n_batches - 1) * self.batch_size
        self.position = 0

    def take(self, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        index, counts = [], []
        while steps > 0:
            if self.position == len(self.batches):
                self._new_epoch()
            end = min(len(self.batches), self.position + steps)
            index.append(self.batches[self.position:end])
            counts.append(self.counts[self.position:end])
            steps -= end - self.position
            self.position = end
        return torch.cat(index), torch.cat(counts)


class StackedMLP:
    """R two-layer MLPs in one flat parameter buffer, with AdamW state of the same shape."""

    def __init__(self, runs: list[PreparedRun], dtype: torch.dtype):
        first = runs[0].parameters
        self.shapes = [tuple(p.shape) for p in first]
        self.flat = torch.stack([torch.cat([p.detach().reshape(-1) for p in run.parameters]) for run in runs])
        self.flat = self.flat.to(dtype)
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)
        hyper = torch.tensor([[r.optimizer.lr, r.optimizer.wd, r.optimizer.beta1, r.optimizer.beta2] for r in runs],
                             dtype=torch.float64, device=self.flat.device)
        self.lr, self.wd, self.beta1, self.beta2 = (hyper[:, k:k + 1] for k in range(4))
        # Python-float constants of PyTorch's update, computed in float64 and rounded once, as it does.
        self.one_minus_beta1 = (1 - self.beta1).to(dtype)
        self.one_minus_beta2 = (1 - self.beta2).to(dtype)
        self.beta2_cast = self.beta2.to(dtype)

    def views(self) -> list[torch.Tensor]:
        sizes = [math.prod(shape) for shape in self.shapes]
        return [chunk.reshape(-1, *shape) for chunk, shape in zip(self.flat.split(sizes, dim=1), self.shapes)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w1, b1, w2, b2 = self.views()
        pre = torch.baddbmm(b1.unsqueeze(1), x, w1.transpose(1, 2))
        hidden = torch.relu(pre)
        prob = torch.sigmoid(torch.baddbmm(b2.unsqueeze(1), hidden, w2.transpose(1, 2)).squeeze(2))
        return pre, hidden, prob

    def gradients(self, x, pre, hidden, prob, y, weight) -> torch.Tensor:
        """d(mean BCE)/d(parameters) per run, term by term as autograd computes it; `weight` = mask / count."""
        _, _, w2, _ = self.views()
        d_prob = weight * (prob - y) / torch.clamp((1 - prob) * prob, min=BCE_EPSILON)
        d_logit = d_prob * (1 - prob) * prob
        d_w2 = torch.bmm(d_logit.unsqueeze(1), hidden)
        d_b2 = d_logit.sum(1, keepdim=True)
        d_pre = (d_logit.unsqueeze(2) * w2) * (pre > 0)
        d_w1 = torch.bmm(d_pre.transpose(1, 2), x)
        d_b1 = d_pre.sum(1)
        return torch.cat([d_w1.flatten(1), d_b1, d_w2.flatten(1), d_b2], dim=1)

    def adamw_step(self, grad: torch.Tensor, step: int, active: torch.Tensor) -> None:
        """torch.optim.AdamW (single-tensor path) for every run; inactive runs get lr 0 and stay unchanged."""
        dtype = self.flat.dtype
        lr = self.lr * active.unsqueeze(1)
        self.flat.mul_((1 - lr * self.wd).to(dtype))
        self.exp_avg.lerp_(grad, self.one_minus_beta1)
        self.exp_avg_sq.mul_(self.beta2_cast).add_(self.one_minus_beta2 * grad * grad)
        step_size = (lr / (1 - self.beta1 ** step)).to(dtype)
        bias_correction2_sqrt = ((1 - self.beta2 ** step) ** 0.5).to(dtype)
        denom = (self.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(ADAM_EPS)
        self.flat.add_(-step_size * self.exp_avg / denom)

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, y: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """Per-run accuracy on per-run test sets x [R, T, N], y [R, T], evaluated in chunks like the original."""
        correct = torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
        for start in range(0, x.shape[1], chunk):
            _, _, prob = self.forward(x[:, start:start + chunk])
            correct += ((prob >= 0.5) == (y[:, start:start + chunk] >= 0.5)).sum(1)
        return correct.double() / x.shape[1]


def train_batched(runs: list[PreparedRun], datasets: list[tuple[torch.Tensor, torch.Tensor]],
                  test_sets: list[tuple[torch.Tensor, torch.Tensor]], config: TaskConfig,
                  device: torch.device, dtype: torch.dtype = torch.float32) -> list[RunOutcome]:
    """Train all `runs` together; `datasets[k]` and `test_sets[k]` are (x, y) of run.dataset_index k.

    Datasets may be given as float {0,1} tensors or already packed (uint8 of ceil(N/8) columns).
    """
    n_features, batch = config.n_features, config.batch_size
    packed = [x if x.dtype == torch.uint8 else pack_bits(x) for x, _ in datasets]
    sizes = [p.shape[0] for p in packed]
    offsets = np.cumsum([0, *sizes])[:-1].tolist()
    bits = torch.cat(packed).to(device)
    labels = torch.cat([y.to(torch.uint8) for _, y in datasets]).to(device)
    del packed
    model = StackedMLP(runs, dtype)
    streams = [OrderStream(sizes[r.dataset_index], r.order_seed, batch, offsets[r.dataset_index]) for r in runs]
    n_runs = len(runs)
    active = torch.ones(n_runs, dtype=torch.bool, device=device)
    steps_taken = torch.full((n_runs,), config.max_steps, dtype=torch.int64, device=device)
    stable = torch.zeros(n_runs, dtype=torch.int64, device=device)
    window_loss = torch.zeros(n_runs, dtype=torch.float64, device=device)
    window_acc = torch.zeros_like(window_loss)
    positions = torch.arange(batch, device=device)
    logged: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]] = []
    step = last_logged = 0
    while step < config.max_steps:
        chunk = min(STEPS_PER_CHUNK, config.max_steps - step)
        live = active.tolist()
        drawn = [s.take(chunk) if alive else (torch.zeros(chunk, batch, dtype=torch.int64),
                                              torch.ones(chunk, dtype=torch.int64))
                 for s, alive in zip(streams, live)]
        index = torch.stack([d[0] for d in drawn], 1).to(device, non_blocking=True)  # [chunk, R, B]
        counts = torch.stack([d[1] for d in drawn], 1).to(device, non_blocking=True)  # [chunk, R]
        for t in range(chunk):
            step += 1
            rows = index[t]
            x = unpack_bits(bits[rows], n_features, dtype)
            y = labels[rows].to(dtype)
            count = counts[t].to(dtype).unsqueeze(1)
            mask = (positions < counts[t].unsqueeze(1)).to(dtype)
            pre, hidden, prob = model.forward(x)
            log_prob = torch.clamp(torch.log(prob), min=-100)
            log_not_prob = torch.clamp(torch.log(1 - prob), min=-100)
            loss = (((y - 1) * log_not_prob - y * log_prob) * mask).sum(1, keepdim=True) / count
            correct = (((prob >= 0.5) == (y >= 0.5)).to(dtype) * mask).sum(1, keepdim=True)
            accuracy = (correct / count).to(torch.float32)
            model.adamw_step(model.gradients(x, pre, hidden, prob, y, mask / count), step, active.to(dtype))
            window_loss += loss.squeeze(1).to(torch.float32).double() * active
            window_acc += accuracy.squeeze(1).double() * active
            if is_log_step(step, config):
                mean_loss, mean_acc = window_loss / (step - last_logged), window_acc / (step - last_logged)
                logged.append((step, mean_loss, mean_acc, active.clone()))
                qualifies = (step >= config.min_steps_before_stop) & (mean_acc >= config.early_stop_acc)
                stable = torch.where(qualifies, stable + 1, torch.zeros_like(stable))
                stopping = active & (stable >= config.early_stop_windows)
                steps_taken = torch.where(stopping, step, steps_taken)
                active = active & ~stopping
                window_loss.zero_()
                window_acc.zero_()
                last_logged = step
                if not bool(active.any()):
                    break
        if not bool(active.any()):
            break
    test_x = torch.stack([test_sets[r.dataset_index][0] for r in runs]).to(device, dtype)
    test_y = torch.stack([test_sets[r.dataset_index][1] for r in runs]).to(device, dtype)
    accuracy = model.accuracy(test_x, test_y).tolist()
    steps_list = steps_taken.tolist()
    log_steps = [entry[0] for entry in logged]
    log_values = [torch.stack(entry[1:]).cpu() for entry in logged]  # [3, R] each: loss, acc, was active
    outcomes = []
    for r in range(n_runs):
        lines = [(s, float(v[0, r]), float(v[1, r])) for s, v in zip(log_steps, log_values) if bool(v[2, r])]
        outcomes.append(RunOutcome(steps_list[r], accuracy[r], lines))
    return outcomes
