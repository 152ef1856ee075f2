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

How equal to `core.train_one_run` (tests/test_parity_batched.py): the data
order, the initial weights and, given the same gradients, every AdamW update
are identical; the batched matrix products sum in another order than the
loop's, so losses and gradients differ in the last bits of float32, which
Adam and training amplify in runs that have not learned. A run is therefore
equal to its one-by-one twin only in distribution (per-run test accuracy),
though runs that learn end with the same step count and accuracy.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ..graphs import graphed
from .core import OptimizerConfig, TaskConfig, all_binary, build_model, is_log_step, train_one_run

BCE_EPSILON = 1e-12  # ATen's clamp in binary_cross_entropy_backward
ADAM_EPS = 1e-8
STEPS_PER_CHUNK = 1000  # data-order indices are drawn on the host and shipped this many steps at a time


def pack_bits(x: torch.Tensor, rows_per_block: int = 1 << 20) -> torch.Tensor:
    """{0,1} rows -> uint8 rows of ceil(N/8) bytes (little-endian bit order), in blocks to bound memory;
    ValueError if a value is not 0 or 1 (a cast would otherwise keep only its lowest bit)."""
    blocks = []
    for start in range(0, x.shape[0], rows_per_block):
        block = x[start:start + rows_per_block]
        if not all_binary(block):
            raise ValueError("only 0s and 1s can be packed as bits")
        blocks.append(np.packbits(block.to(torch.uint8).numpy(), axis=1, bitorder="little"))
    return torch.from_numpy(np.concatenate(blocks) if blocks else np.zeros((0, -(-x.shape[1] // 8)), np.uint8))


def bit_shifts(device: torch.device) -> torch.Tensor:
    return torch.arange(8, dtype=torch.uint8, device=device)


def unpack_bits(packed: torch.Tensor, n_features: int, dtype: torch.dtype,
                shifts: torch.Tensor | None = None) -> torch.Tensor:
    """The inverse of `pack_bits`; `shifts` (`bit_shifts`) may be given by a caller that unpacks every step."""
    shifts = bit_shifts(packed.device) if shifts is None else shifts
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
        self.optimizers = [r.optimizer for r in runs]
        hyper = torch.tensor([[r.optimizer.lr, r.optimizer.wd, r.optimizer.beta1, r.optimizer.beta2] for r in runs],
                             dtype=torch.float64, device=self.flat.device)
        self.lr, self.wd, self.beta1, self.beta2 = (hyper[:, k:k + 1] for k in range(4))
        # Python-float constants of PyTorch's update, computed in float64 and rounded once, as it does.
        self.one_minus_beta1 = (1 - self.beta1).to(dtype)
        self.one_minus_beta2 = (1 - self.beta2).to(dtype)
        self.beta2_cast = self.beta2.to(dtype)
        self.decay = torch.empty_like(self.lr, dtype=dtype)
        self.set_active(torch.ones(len(runs), dtype=dtype, device=self.flat.device))

    def set_active(self, active: torch.Tensor) -> None:
        """Weight decay's factor 1 − lr·wd, in float64 then rounded as PyTorch does, for the runs still training
        (`active` 1) and 1 for stopped ones (0); computed when `active` changes, not every step."""
        self.decay.copy_((1 - self.lr * active.unsqueeze(1) * self.wd).to(self.decay.dtype))

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

    def step_factors(self, first_step: int, steps: int) -> torch.Tensor:
        """[steps, 2, R] in the parameters' dtype: AdamW's −lr / (1 − β1^t) and √(1 − β2^t) for steps
        first_step, …, computed in Python floats exactly as torch.optim.AdamW computes them and rounded once,
        where PyTorch passes them to a kernel (on the host, a chunk at a time)."""
        return torch.tensor([[[-(o.lr / (1 - o.beta1 ** t)) for o in self.optimizers],
                              [(1 - o.beta2 ** t) ** 0.5 for o in self.optimizers]]
                             for t in range(first_step, first_step + steps)], dtype=torch.float64).to(self.flat.dtype)

    def adamw_step(self, grad: torch.Tensor, factors: torch.Tensor, active: torch.Tensor) -> None:
        """torch.optim.AdamW's single-tensor update for every run, in its operation order: its Python-float
        quantities in float64 rounded to the parameters' dtype where PyTorch passes them to a kernel
        (`factors`: one step of `step_factors`; the decay factor: `set_active`), and its `addcmul_`/`addcdiv_`
        kernels fed so that they evaluate exactly what PyTorch's do with a scalar value (the CPU's addcdiv is
        self + (s·a)/b, CUDA's self + s·(a/b)). Given the same gradients the parameters equal PyTorch's bit for
        bit on the CPU (tests/test_parity_batched.py). Inactive runs (`active` 0) get step size −0 and decay
        factor 1, and stay unchanged."""
        self.flat.mul_(self.decay)
        self.exp_avg.lerp_(grad, self.one_minus_beta1)
        self.exp_avg_sq.mul_(self.beta2_cast).addcmul_(self.one_minus_beta2 * grad, grad)
        neg_step_size, bias_correction2_sqrt = factors[0].unsqueeze(1), factors[1].unsqueeze(1)
        denom = (self.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(ADAM_EPS)
        value = neg_step_size * active.unsqueeze(1)
        if self.flat.device.type == "cuda":
            self.flat.addcmul_(value, self.exp_avg / denom)
        else:
            self.flat.addcdiv_(value * self.exp_avg, denom)

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, y: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """Per-run accuracy on per-run test sets x [R, T, N], y [R, T], evaluated in chunks like the original."""
        correct = torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
        for start in range(0, x.shape[1], chunk):
            _, _, prob = self.forward(x[:, start:start + chunk])
            correct += ((prob >= 0.5) == (y[:, start:start + chunk] >= 0.5)).sum(1)
        return correct.double() / x.shape[1]


class BatchedTrainer:
    """All runs' training state on the device and one step of every run as a static computation.

    `step` has fixed shapes and never reads a value back to the host, so on CUDA it
    is captured once as a CUDA graph and replayed; on the CPU it runs as is.
    """

    def __init__(self, runs: list[PreparedRun], datasets: list[tuple[torch.Tensor, torch.Tensor]],
                 config: TaskConfig, device: torch.device, dtype: torch.dtype):
        self.config, self.device, self.dtype = config, device, dtype
        packed = [x if x.dtype == torch.uint8 else pack_bits(x) for x, _ in datasets]
        sizes = [p.shape[0] for p in packed]
        offsets = np.cumsum([0, *sizes])[:-1].tolist()
        self.bits = torch.cat(packed).to(device)
        self.labels = torch.cat([y.to(torch.uint8) for _, y in datasets]).to(device)
        self.model = StackedMLP(runs, dtype)
        batch, n_runs = config.batch_size, len(runs)
        self.streams = [OrderStream(sizes[r.dataset_index], r.order_seed, batch, offsets[r.dataset_index])
                        for r in runs]
        # Per step of the current chunk: each run's rows; (mask, mask / count) per batch slot, where mask is 1
        # for a slot holding a row (the last batch of an epoch is short); (count, AdamW's two step factors).
        self.index = torch.zeros(STEPS_PER_CHUNK, n_runs, batch, dtype=torch.int64, device=device)
        self.slot_weights = torch.zeros(STEPS_PER_CHUNK, 2, n_runs, batch, dtype=dtype, device=device)
        self.run_scalars = torch.ones(STEPS_PER_CHUNK, 3, n_runs, dtype=dtype, device=device)
        self.position = torch.zeros(1, dtype=torch.int64, device=device)  # step within the chunk
        self.shifts = bit_shifts(device)
        self.active = torch.ones(n_runs, dtype=dtype, device=device)  # 1 while a run trains, 0 once stopped
        self.window_loss = torch.zeros(n_runs, dtype=torch.float64, device=device)
        self.window_acc = torch.zeros_like(self.window_loss)
        self.stable = torch.zeros(n_runs, dtype=torch.int64, device=device)
        self.steps_taken = torch.full((n_runs,), config.max_steps, dtype=torch.int64, device=device)
        self.slots = torch.arange(batch, device=device)

    def load_chunk(self, steps: int, first_step: int) -> None:
        """Draw the next `steps` batches of every run still training, in each run's own order stream, and
        what the steps need besides: slot weights, counts, AdamW's step factors."""
        batch = self.config.batch_size

        def take(stream: OrderStream, alive: bool) -> tuple[torch.Tensor, torch.Tensor]:
            if alive:
                return stream.take(steps)
            return torch.zeros(steps, batch, dtype=torch.int64), torch.ones(steps, dtype=torch.int64)

        # A new epoch is a randperm of up to 12.8M rows per run (~0.4 s each), serial within its generator but
        # independent between runs: drawn in as many threads as the job has (torch releases the GIL), each
        # stream exactly as alone.
        with ThreadPoolExecutor(max_workers=min(len(self.streams), torch.get_num_threads())) as pool:
            drawn = list(pool.map(take, self.streams, self.active.bool().tolist()))
        self.index[:steps].copy_(torch.stack([d[0] for d in drawn], 1))
        counts = torch.stack([d[1] for d in drawn], 1).to(self.device)
        count = counts.to(self.dtype)
        mask = (self.slots < counts.unsqueeze(2)).to(self.dtype)
        self.slot_weights[:steps, 0] = mask
        self.slot_weights[:steps, 1] = mask / count.unsqueeze(2)
        self.run_scalars[:steps, 0] = count
        self.run_scalars[:steps, 1:] = self.model.step_factors(first_step, steps).to(self.device)
        self.position.zero_()

    def step(self) -> None:
        dtype = self.dtype
        rows = self.index.index_select(0, self.position).squeeze(0)
        mask, weight = self.slot_weights.index_select(0, self.position).squeeze(0).unbind()
        scalars = self.run_scalars.index_select(0, self.position).squeeze(0)
        count, factors = scalars[0], scalars[1:]
        x = unpack_bits(self.bits[rows], self.config.n_features, dtype, self.shifts)
        y = self.labels[rows].to(dtype)
        pre, hidden, prob = self.model.forward(x)
        log_prob = torch.clamp(torch.log(prob), min=-100)
        log_not_prob = torch.clamp(torch.log(1 - prob), min=-100)
        loss = (((y - 1) * log_not_prob - y * log_prob) * mask).sum(1) / count
        correct = (((prob >= 0.5) == (y >= 0.5)).to(dtype) * mask).sum(1)
        accuracy = (correct / count).to(torch.float32)
        self.model.adamw_step(self.model.gradients(x, pre, hidden, prob, y, weight), factors, self.active)
        self.window_loss += loss.to(torch.float32).double() * self.active
        self.window_acc += accuracy.double() * self.active
        self.position += 1

    def log_event(self, steps_in_window: int, step: int) -> tuple[torch.Tensor, ...]:
        """Close a TRAIN_METRICS window: its means, and the original's early-stopping rule per run."""
        config = self.config
        mean_loss, mean_acc = self.window_loss / steps_in_window, self.window_acc / steps_in_window
        was_active = self.active.bool()
        qualifies = (step >= config.min_steps_before_stop) & (mean_acc >= config.early_stop_acc)
        self.stable = torch.where(qualifies, self.stable + 1, torch.zeros_like(self.stable))
        stopping = was_active & (self.stable >= config.early_stop_windows)
        self.steps_taken = torch.where(stopping, step, self.steps_taken)
        self.active.mul_((~stopping).to(self.dtype))
        self.model.set_active(self.active)
        self.window_loss.zero_()
        self.window_acc.zero_()
        return mean_loss, mean_acc, was_active

    def mutable_state(self) -> list[torch.Tensor]:
        model = self.model
        return [model.flat, model.exp_avg, model.exp_avg_sq, self.position, self.window_loss,
                self.window_acc]

    def step_function(self, cuda_graph: bool = True):
        """`step`, or on CUDA (unless `cuda_graph` is False) the replay of its CUDA graph."""
        if self.device.type != "cuda" or not cuda_graph:
            return self.step
        return graphed(self.step, self.mutable_state())


def train_batched(runs: list[PreparedRun], datasets: list[tuple[torch.Tensor, torch.Tensor]],
                  test_sets: list[tuple[torch.Tensor, torch.Tensor]], config: TaskConfig,
                  device: torch.device, dtype: torch.dtype = torch.float32,
                  cuda_graph: bool = True) -> list[RunOutcome]:
    """Train all `runs` together; `datasets[k]` and `test_sets[k]` are (x, y) of run.dataset_index k.

    Datasets may be given as float {0,1} tensors or already packed (uint8 of ceil(N/8) columns).
    `cuda_graph=False` runs the same step eagerly on CUDA: the reference the graph replay is tested against.
    """
    trainer = BatchedTrainer(runs, datasets, config, device, dtype)
    step_function = None
    logged = []
    step = last_logged = 0
    while step < config.max_steps and bool(trainer.active.any()):
        chunk = min(STEPS_PER_CHUNK, config.max_steps - step)
        trainer.load_chunk(chunk, step + 1)
        step_function = step_function or trainer.step_function(cuda_graph)
        for _ in range(chunk):
            step_function()
            step += 1
            if is_log_step(step, config):
                logged.append((step, *trainer.log_event(step - last_logged, step)))
                last_logged = step
                if not bool(trainer.active.any()):
                    break
    test_x = torch.stack([test_sets[r.dataset_index][0] for r in runs]).to(device, dtype)
    test_y = torch.stack([test_sets[r.dataset_index][1] for r in runs]).to(device, dtype)
    accuracy = trainer.model.accuracy(test_x, test_y).tolist()
    steps_taken = trainer.steps_taken.tolist()
    log_values = [torch.stack([loss, acc, active.double()]).cpu() for _, loss, acc, active in logged]
    outcomes = []
    for r in range(len(runs)):
        lines = [(entry[0], float(v[0, r]), float(v[1, r])) for entry, v in zip(logged, log_values) if v[2, r]]
        outcomes.append(RunOutcome(steps_taken[r], accuracy[r], lines))
    return outcomes


def train_one_by_one(runs: list[PreparedRun], datasets: list[tuple[torch.Tensor, torch.Tensor]],
                     test_sets: list[tuple[torch.Tensor, torch.Tensor]], config: TaskConfig,
                     device: torch.device) -> list[RunOutcome]:
    """The same runs through the original one-run-at-a-time loop: the reference for tests and benchmarks."""
    outcomes = []
    for run in runs:
        model = build_model(config).to(device)
        with torch.no_grad():
            for target, source in zip([model[0].weight, model[0].bias, model[2].weight, model[2].bias],
                                      run.parameters):
                target.copy_(source)
        packed, y = datasets[run.dataset_index]
        x = unpack_bits(packed, config.n_features, torch.float32)
        log: list[tuple[int, float, float]] = []
        steps, accuracy = train_one_run(model, run.optimizer, x, y.float(), *test_sets[run.dataset_index], config,
                                        run.order_seed, device, lambda *line: log.append(line))
        outcomes.append(RunOutcome(steps, accuracy, log))
    return outcomes
