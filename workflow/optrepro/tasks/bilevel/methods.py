"""The four hyper-cleaning methods: V-PBGD, G-PBGD, RHG and T-RHG (docs/tasks/bilevel.md).

Data and models live on the run's device. The host reads device values only
at evaluation points (every `eval_interval` steps for the PBGD methods, every
outer step for RHG, which evaluates every step): the loss values of a record
are kept as tensors until then. The PBGD penalty schedule is Python arithmetic done before the loop
(`pbgd_schedule`); on CUDA one PBGD outer step is one CUDA-graph replay.
Each evaluation record goes to `on_eval(record, aux_name, iter_time)` as it
is made (the driver prints it).

Differences from the original that do not change any computed value: the RHG
forward unroll does not keep the autograd graph of its T steps (the original
keeps it but never uses it: the reverse routine detaches the history and
recomputes each map), so its memory does not grow with T; a regulariser with
`reg` = 0 is not computed (it adds exact zeros). Timing (`iter_time`) is taken
after a device synchronisation at evaluated steps, so it means what it says on
CUDA too. The reverse-mode hypergradient is `reverse_hypergradient`, written
from its mathematical description.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import torch
import torch.nn as nn

from ..graphs import WARM_UP_STEPS, graphed
from .config import HypercleanEval, HypercleanStrategy
from .hyperclean import (
    HypercleanSplit,
    _per_example_ce,
    _regulariser,
    compute_accuracy,
    compute_cleaner_metrics,
    lower_loss,
    make_eval_record,
    make_model,
    sum_squared_norm,
    update_best_by_accuracy,
    update_best_by_f1,
    upper_loss,
    yforward,
)

AUX_NAMES = {"v_pbgd": "penalty_gap", "g_pbgd": "grad_penalty", "rhg": "inner_objective", "t_rhg": "inner_objective"}

EvalCallback = Callable[[HypercleanEval, str, float], None]


@dataclass
class HypercleanRun:
    """What a method returns: its records (as the original), the `corrected` protocol's iterate records
    (empty under `mlsbench`), the two running bests and the outer loop's duration."""

    records: list[HypercleanEval]
    iterate_records: list[HypercleanEval]
    best_accuracy: HypercleanEval | None
    best_f1: HypercleanEval | None
    total_runtime_sec: float


class _Recorder:
    """Builds, passes on (`on_eval`) and keeps records; tracks the two bests."""

    def __init__(self, method: str, corrected: bool, on_eval: EvalCallback | None):
        self.aux_name = AUX_NAMES[method]
        self.corrected = corrected
        self.on_eval = on_eval
        self.records: list[HypercleanEval] = []
        self.iterate_records: list[HypercleanEval] = []
        self.best_accuracy = self.best_f1 = None
        self.start = time.perf_counter()

    def add(self, record: HypercleanEval, iter_time: float, iterate_val_loss=None, iterate_accuracy=None):
        self.records.append(record)
        self.best_accuracy = update_best_by_accuracy(self.best_accuracy, record)
        self.best_f1 = update_best_by_f1(self.best_f1, record)
        if self.on_eval is not None:
            self.on_eval(record, self.aux_name, iter_time)
        if self.corrected:
            self.iterate_records.append(replace(
                record,
                val_loss=float(record.val_loss if iterate_val_loss is None else iterate_val_loss),
                test_accuracy=float(record.test_accuracy if iterate_accuracy is None else iterate_accuracy)))

    def finish(self) -> HypercleanRun:
        return HypercleanRun(self.records, self.iterate_records, self.best_accuracy, self.best_f1,
                             time.perf_counter() - self.start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pbgd_schedule(strategy: HypercleanStrategy, steps: int) -> list[tuple[float, float]]:
    """Per outer step, the objective's two Python-float factors: λ = min(1/(γ+1e-8), 1) and the penalty's
    weight (γ for V-PBGD, 0.5·γ for G-PBGD), with γ ramped as the original ramps it."""
    gamma_top = max(strategy.gamma_init, strategy.gamma_max)
    delta = (gamma_top - strategy.gamma_init) / strategy.gamma_argmax_step
    gamma, factors = strategy.gamma_init, []
    for _ in range(steps):
        factors.append((min(1.0 / (gamma + 1e-8), 1.0), gamma if strategy.method == "v_pbgd" else 0.5 * gamma))
        gamma = min(gamma_top, gamma + delta)
    return factors


def run_pbgd(method: str, strategy: HypercleanStrategy, model: nn.Module, train: HypercleanSplit,
              val: HypercleanSplit, test: HypercleanSplit, net: str, corrected: bool,
              on_eval: EvalCallback | None, cuda_graph: bool = True) -> HypercleanRun:
    """V-PBGD and G-PBGD: the common loop, penalty schedule and evaluation.

    One outer step (`step`) has fixed shapes and reads nothing back to the host: its two schedule factors
    come from a device table indexed by a device counter, as 0-d float32 tensors, which the kernels multiply
    exactly as they multiply the Python floats of the original (each rounded once to float32). On CUDA it is
    captured once as a CUDA graph and replayed (unless `cuda_graph` is False: the eager reference).
    """
    device = train.data.device
    x = torch.zeros(train.data.shape[0], device=device, requires_grad=True)
    params = list(model.parameters())
    opt_x = torch.optim.SGD([x], lr=strategy.lrx)
    opt_y = torch.optim.SGD(params, lr=strategy.lry)
    inner_params = []
    if method == "v_pbgd":
        # A second model is constructed (consuming torch random numbers), then overwritten by y's initial values.
        inner_model = make_model(net).to(device)
        inner_model.load_state_dict(copy.deepcopy(model.state_dict()))
        inner_params = list(inner_model.parameters())
        opt_inner = torch.optim.SGD(inner_params, lr=strategy.lr_inner)
    # As many steps as the run takes, and at least as many as a CUDA graph's warm-up reads.
    steps = max(strategy.outer_itr, WARM_UP_STEPS)
    schedule = torch.tensor(pbgd_schedule(strategy, steps), dtype=torch.float32, device=device)
    position = torch.zeros(1, dtype=torch.int64, device=device)

    def step() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One outer step; (f, g, aux) of it."""
        lam, penalty_weight = schedule.index_select(0, position).squeeze(0).unbind()
        if method == "v_pbgd":
            weights = torch.sigmoid(x).detach()
            for _ in range(strategy.inner_itr):
                opt_inner.zero_grad()
                inner_loss = (weights * _per_example_ce(inner_model(train.data), train.train_targets)).mean() \
                    + _regulariser(inner_params, strategy.reg)
                inner_loss.backward()
                opt_inner.step()
            f = upper_loss(params, val)
            g = lower_loss(params, torch.sigmoid(x), train, strategy.reg)
            with torch.no_grad():
                inner_ce = _per_example_ce(inner_model(train.data), train.train_targets)
                inner_reg = _regulariser(inner_params, strategy.reg)
            v = (torch.sigmoid(x) * inner_ce).mean() + inner_reg
            aux = g - v
            objective = lam * (f + penalty_weight * aux)
        else:
            f = upper_loss(params, val)
            g = lower_loss(params, torch.sigmoid(x), train, strategy.reg)
            grads = torch.autograd.grad(g, params, create_graph=True)
            penalty = sum_squared_norm(grads)
            aux = torch.sqrt(penalty.detach() + 1e-12)
            objective = lam * (f + penalty_weight * penalty)
        opt_x.zero_grad()
        opt_y.zero_grad()
        objective.backward()
        opt_x.step()
        opt_y.step()
        with torch.no_grad():
            position.add_(1)
        return f.detach(), g.detach(), aux.detach()

    replay = graphed(step, [x, *params, *inner_params, position]) if device.type == "cuda" and cuda_graph else step
    recorder = _Recorder(method, corrected, on_eval)
    for k in range(strategy.outer_itr):
        evaluate = k % strategy.eval_interval == 0
        if evaluate:
            _sync(device)
        t0 = time.perf_counter()
        f, g, aux = replay()
        if evaluate:
            _sync(device)
            iter_time = time.perf_counter() - t0
            test_acc = compute_accuracy(params, test)
            f1, precision, recall = compute_cleaner_metrics(x.detach(), train.clean, train.rho)
            record = make_eval_record(k, g, f, test_acc, f1, precision, recall, aux, recorder.start)
            iterate_val = None
            if corrected:  # the validation loss of the evaluated (updated) y; no RNG, no effect on the run
                with torch.no_grad():
                    iterate_val = upper_loss(params, val)
            recorder.add(record, iter_time, iterate_val_loss=iterate_val)
    return recorder.finish()


def run_v_pbgd(strategy, model, train, val, test, net, corrected=False, on_eval=None) -> HypercleanRun:
    return run_pbgd("v_pbgd", strategy, model, train, val, test, net, corrected, on_eval)


def run_g_pbgd(strategy, model, train, val, test, net, corrected=False, on_eval=None) -> HypercleanRun:
    return run_pbgd("g_pbgd", strategy, model, train, val, test, net, corrected, on_eval)

UpdateMap = Callable[[Sequence[torch.Tensor], torch.Tensor], list[torch.Tensor]]


def reverse_hypergradient(history: Sequence[Sequence[torch.Tensor]], x: torch.Tensor, update_map: UpdateMap,
                          outer_loss: Callable[[Sequence[torch.Tensor]], torch.Tensor]) -> torch.Tensor:
    """Reverse-mode hypergradient over a history H = [h_0, …, h_K] of the map y ↦ Φ(y; x).

    Every h_j becomes a fresh leaf. With α = ∇_y f(h_K) (f does not depend on x directly), for
    j = K−1, …, 0: recompute Φ(h_j; x), add αᵀ ∂Φ/∂x to the hypergradient and set α ← αᵀ ∂Φ/∂h_j.
    The map is recomputed at h_j, whatever produced h_{j+1}: with a truncated history (K < T) the oldest
    map sits at h_0 (the fresh initialisation), as in the original. Sets and returns x.grad.
    """
    leaves = [[p.detach().requires_grad_(True) for p in params] for params in history]
    alpha = torch.autograd.grad(outer_loss(leaves[-1]), leaves[-1])
    hypergrad = torch.zeros_like(x)
    for j in range(len(leaves) - 2, -1, -1):
        mapped = update_map(leaves[j], x)
        wrt = [x, *leaves[j]] if j > 0 else [x]  # α is not needed past h_0
        vjps = torch.autograd.grad(mapped, wrt, grad_outputs=alpha)
        hypergrad = hypergrad + vjps[0]
        alpha = vjps[1:]
    x.grad = hypergrad
    return hypergrad


def _inner_step(params: Sequence[torch.Tensor], x: torch.Tensor, train: HypercleanSplit, lr_inner: float,
                reg: float, create_graph: bool) -> list[torch.Tensor]:
    """Φ(y; x) = y − lr_inner ∇_y[mean σ(x_i) CE_i(y) + reg ‖y‖²]."""
    loss = lower_loss(params, torch.sigmoid(x), train, reg)
    grads = torch.autograd.grad(loss, params, create_graph=create_graph)
    return [p - lr_inner * g for p, g in zip(params, grads)]


def run_rhg_family(strategy: HypercleanStrategy, model: nn.Module, train: HypercleanSplit,
                   val: HypercleanSplit, test: HypercleanSplit, net: str, corrected: bool = False,
                   on_eval: EvalCallback | None = None) -> HypercleanRun:
    """RHG and T-RHG: fresh classifier each outer step, T unrolled steps, reverse over the last K.

    `model` is not used (each outer step constructs its own); it is accepted for a uniform signature.
    """
    del model
    device = train.data.device
    T, K = strategy.T, strategy.K
    x = torch.zeros(train.data.shape[0], device=device, requires_grad=True)
    opt_x = torch.optim.SGD([x], lr=strategy.lr)
    recorder = _Recorder(strategy.method, corrected, on_eval)

    def update_map(params, hparams):
        return _inner_step(params, hparams, train, strategy.lr_inner, strategy.reg, create_graph=True)

    def outer_loss(params):
        return upper_loss(params, val)

    for k in range(strategy.outer_itr):
        y0 = [p.detach() for p in make_model(net).to(device).parameters()]
        _sync(device)
        t0 = time.perf_counter()
        # Forward unroll. The original keeps this graph but never differentiates through it (the reverse pass
        # detaches the history), so the steps are taken without one: same values, memory independent of T.
        x_fixed = x.detach()
        history = [y0]
        current = y0
        for t in range(T):
            leaves = [p.requires_grad_(True) for p in (q.detach() for q in current)]
            with torch.enable_grad():
                current = [p.detach() for p in _inner_step(leaves, x_fixed, train, strategy.lr_inner, strategy.reg,
                                                          create_graph=False)]
            if t >= T - K:
                history.append(current)
        opt_x.zero_grad()
        reverse_hypergradient(history, x, update_map, outer_loss)
        opt_x.step()
        _sync(device)
        iter_time = time.perf_counter() - t0
        with torch.no_grad():
            y_last = history[-1]
            val_loss = upper_loss(y_last, val)
            weights = torch.sigmoid(x)
            train_losses = torch.stack([(weights * _per_example_ce(yforward(h, train.data), train.train_targets)).mean()
                                        for h in history])
            accuracies = torch.stack([compute_accuracy(h, test) for h in history])
            f1, precision, recall = compute_cleaner_metrics(x, train.clean, train.rho)
            inner_objective = train_losses.min()
            record = make_eval_record(k, inner_objective, val_loss, accuracies.max(), f1, precision, recall,
                                      inner_objective, recorder.start)
        # Corrected: the iterate evaluated is y_T, the one whose validation loss is recorded.
        recorder.add(record, iter_time, iterate_accuracy=accuracies[-1] if corrected else None)
    return recorder.finish()

METHOD_RUNNERS = {"v_pbgd": run_v_pbgd, "g_pbgd": run_g_pbgd, "rhg": run_rhg_family, "t_rhg": run_rhg_family}
