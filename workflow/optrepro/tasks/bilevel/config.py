"""The bilevel task's configuration, without torch: the original's dataclasses, benchmarks, protocols, job sizes.

Kept free of torch so that the Snakefile (parsed on every job start) can size
jobs and check names cheaply. Names, types, defaults and the `ValueError`
messages of `ToyStrategy.validate` are the original driver's. The original's
messages of `HypercleanStrategy.validate` are not in the sources (only the
checks and their order are known); the messages here follow `ToyStrategy`'s.

Three benchmark commands. Two protocols: `mlsbench` runs what the original
ran (the toy's defective x-derivative of f; hyper-cleaning reports the best
test accuracy over all evaluations, a choice made on the test set);
`corrected` uses the exact derivative and adds, for hyper-cleaning, the
evaluation chosen by validation loss and the last iterate (`val_selected_*`,
`last_*`).

Scale overrides (`--set FIELD=VALUE`, one list for the whole task; each
benchmark uses the fields of its own mode): any `ToyProblemConfig` field
(e.g. `max_steps_per_gamma`), any `HypercleanConfig` field (e.g.
`train_size`), and two caps on a strategy's budget, `max_outer_itr`
(outer iterations of every method) and `max_unroll` (RHG/T-RHG's T, with K
capped at the new T). A run records the overrides; the report shows them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from ...data.manifest import root_from_environment
from ..scale import TaskConfigError
from ..scale import parse_overrides as parse_field_overrides

# Bound on every x a run can see (overrides only). Within it no term of f or ∇f that depends on x alone
# overflows (e^{2-4x} squared does below x ≈ -88), so a run can only raise through a diverging y.
X_BOUND = 50.0

HYPERCLEAN_METHODS = ("v_pbgd", "g_pbgd", "rhg", "t_rhg")


PBGD_METHODS = ("v_pbgd", "g_pbgd")


NETS = ("linear", "mlp")


MNIST_TRAIN_IMAGES = 60_000

# Read once at import time, as the original does.
_DEFAULT_DATASET_ROOT = root_from_environment() + "/mnist"


@dataclass(frozen=True)
class ToyProblemConfig:
    """The toy problem's fixed settings; `DEFAULT_TOY` is the one the original uses."""

    x_lower: float = 0.0
    x_upper: float = 3.0
    init_x_lower: float = 0.0
    init_x_upper: float = 3.5
    init_y_lower: float = -5.0
    init_y_upper: float = 8.5
    num_runs: int = 1000
    stationarity_tol: float = 1e-5
    residual_tol: float = 5e-2  # declared but never used by the driver
    max_steps_per_gamma: int = 20_000

    def validate(self) -> None:
        """Checks for scale overrides (an optrepro addition: the original never changes DEFAULT_TOY).

        Raises ValueError on the first failure, in field order.
        """
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", float) and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
                raise ValueError(f"{f.name} must be a number, got {value!r}.")
            if f.type in ("int", int) and not (isinstance(value, int) and not isinstance(value, bool)):
                raise ValueError(f"{f.name} must be an integer, got {value!r}.")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name} must be finite, got {value!r}.")
        for name in ("x_lower", "x_upper", "init_x_lower", "init_x_upper"):
            if abs(getattr(self, name)) > X_BOUND:
                raise ValueError(f"{name} must lie in [-{X_BOUND:g}, {X_BOUND:g}].")
        if self.x_lower > self.x_upper:
            raise ValueError("x_lower must not exceed x_upper.")
        if self.init_x_lower > self.init_x_upper:
            raise ValueError("init_x_lower must not exceed init_x_upper.")
        if self.init_y_lower > self.init_y_upper:
            raise ValueError("init_y_lower must not exceed init_y_upper.")
        if self.num_runs <= 0:
            raise ValueError("num_runs must be positive.")
        if self.stationarity_tol < 0.0:
            raise ValueError("stationarity_tol must be non-negative.")
        if self.max_steps_per_gamma < 0:
            raise ValueError("max_steps_per_gamma must be non-negative.")


@dataclass(frozen=True)
class ToyStrategy:
    """What `get_toy_strategy()` returns: only `gams[0]` is ever used, len(gams) sizes the failure count."""

    method: str
    gams: tuple[float, ...]
    alpha0: float

    def validate(self) -> None:
        """The original's checks, in its order and with its messages."""
        if self.method not in {"v_pbgd", "g_pbgd"}:
            raise ValueError(f"Unsupported toy method: {self.method}")
        if not self.gams:
            raise ValueError("Toy strategy must contain at least one penalty value.")
        if any(gam <= 0.0 for gam in self.gams):
            raise ValueError(f"Penalty values must be positive, got {self.gams}")
        if self.alpha0 <= 0.0:
            raise ValueError("alpha0 must be positive.")


@dataclass(frozen=True)
class HypercleanConfig:
    """The data hyper-cleaning problem's fixed settings; `DEFAULT_HYPERCLEAN` is the one the original uses."""

    dataset_name: str = "MNIST"  # informational only
    dataset_root: str = _DEFAULT_DATASET_ROOT
    train_size: int = 5000
    val_size: int = 5000
    test_size: int = 10000
    pollute_rate: float = 0.5

    def validate(self) -> None:
        """Checks for scale overrides (an optrepro addition: the original never changes DEFAULT_HYPERCLEAN)."""
        for name in ("train_size", "val_size", "test_size"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool)) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        total = self.train_size + self.val_size + self.test_size
        if total > MNIST_TRAIN_IMAGES:
            raise ValueError(f"train_size + val_size + test_size must not exceed {MNIST_TRAIN_IMAGES}, got {total}.")
        rate = self.pollute_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) \
                or not 0.0 <= rate < 1.0:
            # rate 1 would make the recall's denominator 1 - rho + 1e-8 degenerate.
            raise ValueError(f"pollute_rate must lie in [0, 1), got {rate!r}.")


@dataclass(frozen=True)
class HypercleanStrategy:
    """What `get_hyperclean_strategy(net)` returns; fields a method does not use are ignored."""

    method: str
    lrx: float = 0.0
    lry: float = 0.0
    lr_inner: float = 0.0
    gamma_init: float = 0.0
    gamma_max: float = 0.0
    gamma_argmax_step: int = 1
    outer_itr: int = 0
    inner_itr: int = 1
    lr: float = 0.0
    T: int = 0
    K: int = 0
    reg: float = 0.0
    eval_interval: int = 10

    def validate(self) -> None:
        """The original's checks, in its order; raises ValueError on the first failure."""
        if self.method not in HYPERCLEAN_METHODS:
            raise ValueError(f"Unsupported hyperclean method: {self.method}")
        if self.eval_interval <= 0:
            raise ValueError("eval_interval must be positive.")
        if self.reg < 0.0:
            raise ValueError("reg must be non-negative.")
        if self.method in PBGD_METHODS:
            if self.lrx <= 0.0 or self.lry <= 0.0:
                raise ValueError("lrx and lry must be positive.")
            if self.outer_itr <= 0:
                raise ValueError("outer_itr must be positive.")
            if self.gamma_init < 0.0 or self.gamma_max < 0.0:
                raise ValueError("gamma_init and gamma_max must be non-negative.")
            if self.gamma_argmax_step <= 0:
                raise ValueError("gamma_argmax_step must be positive.")
            if self.method == "v_pbgd":
                if self.lr_inner <= 0.0:
                    raise ValueError("lr_inner must be positive for v_pbgd.")
                if self.inner_itr <= 0:
                    raise ValueError("inner_itr must be positive for v_pbgd.")
        else:
            if self.lr <= 0.0 or self.lr_inner <= 0.0:
                raise ValueError("lr and lr_inner must be positive.")
            if self.outer_itr <= 0 or self.T <= 0 or self.K <= 0:
                raise ValueError("outer_itr, T and K must be positive.")
            if self.K > self.T:
                raise ValueError("K must not exceed T.")


@dataclass
class HypercleanEval:
    """One evaluation record; tensor inputs (0-d) become Python floats when the record is built."""

    step: int
    train_loss: float
    val_loss: float
    test_accuracy: float
    f1_score: float
    cleaner_precision: float
    cleaner_recall: float
    aux_value: float
    runtime_sec: float

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            setattr(self, f.name, int(value) if f.name == "step" else float(value))


DEFAULT_TOY = ToyProblemConfig()
DEFAULT_HYPERCLEAN = HypercleanConfig()

BENCHMARKS = {"toy-convergence": {"mode": "toy"},
              "hyperclean-linear": {"mode": "hyperclean", "net": "linear"},
              "hyperclean-mlp": {"mode": "hyperclean", "net": "mlp"}}


# `original_loop`: the toy runs the original's own Python-float loop, so `mlsbench` prints the original's numbers
# bit for bit; `corrected` runs all starts at once (equal to a plain loop with torch's elementary functions).
PROTOCOLS = {"mlsbench": {"exact_gradient": False, "original_loop": True},
             "corrected": {"exact_gradient": True, "original_loop": False}}


# The datasets a benchmark reads (names of optrepro.data); the workflow fetches and hashes them.
DATASETS = {"hyperclean-linear": "mnist", "hyperclean-mlp": "mnist"}

BUDGET_CAPS = {"max_outer_itr": int, "max_unroll": int}


OVERRIDE_TYPES = {**{f.name: type(getattr(DEFAULT_TOY, f.name)) for f in fields(ToyProblemConfig)},
                  **{f.name: type(getattr(DEFAULT_HYPERCLEAN, f.name)) for f in fields(HypercleanConfig)},
                  **BUDGET_CAPS}
OVERRIDE_FIELDS = tuple(OVERRIDE_TYPES)
# Outer iterations per second on one CPU thread, measured on the full 5,000-example problem (docs/speed.md);
# the largest budget of the shipped strategies (80,000, MLP v_pbgd) sizes a job whose strategy is unknown.
CPU_ITERATIONS_PER_SECOND = {"linear": 40, "mlp": 5}


LARGEST_OUTER_ITR = 80_000


def parse_overrides(items: list[str]) -> dict[str, object]:
    return parse_field_overrides(items, OVERRIDE_TYPES)


def configured(default: ToyProblemConfig | HypercleanConfig, overrides: dict[str, object]):
    """`default` with the overrides that name its fields (the others belong to the other mode), validated."""
    config = replace(default, **{k: v for k, v in overrides.items() if hasattr(default, k)})
    config.validate()
    return config


def capped_strategy(strategy: HypercleanStrategy, overrides: dict[str, object]) -> HypercleanStrategy:
    """The strategy with the scale's budget caps applied (unchanged without caps; `resolve_config` checked them)."""
    changes = {}
    if "max_outer_itr" in overrides:
        changes["outer_itr"] = min(strategy.outer_itr, overrides["max_outer_itr"])
    if "max_unroll" in overrides and strategy.method in ("rhg", "t_rhg"):
        changes["T"] = min(strategy.T, overrides["max_unroll"])
        changes["K"] = min(strategy.K, changes["T"])
    return replace(strategy, **changes)


@dataclass(frozen=True)
class BenchmarkConfig:
    """One benchmark command, resolved: its mode, net and protocol, the problem's settings and the budget caps."""

    benchmark: str
    protocol: str
    problem: ToyProblemConfig | HypercleanConfig
    caps: dict[str, int]

    @property
    def mode(self) -> str:
        return BENCHMARKS[self.benchmark]["mode"]

    @property
    def net(self) -> str | None:
        return BENCHMARKS[self.benchmark].get("net")

    @property
    def exact_gradient(self) -> bool:
        return PROTOCOLS[self.protocol]["exact_gradient"]

    @property
    def original_loop(self) -> bool:
        return PROTOCOLS[self.protocol]["original_loop"]


def resolve_config(benchmark: str, protocol: str, overrides: dict[str, object] | None = None) -> BenchmarkConfig:
    """The benchmark's problem (its mode's defaults with the overrides of their fields) and caps, validated."""
    overrides = overrides or {}
    default = DEFAULT_TOY if BENCHMARKS[benchmark]["mode"] == "toy" else DEFAULT_HYPERCLEAN
    try:
        problem = configured(default, overrides)
    except ValueError as exc:
        raise TaskConfigError(str(exc)) from None
    for cap in BUDGET_CAPS:
        if cap in overrides and overrides[cap] <= 0:
            raise TaskConfigError(f"{cap} must be positive, got {overrides[cap]}.")
    # the caps bound hyper-cleaning strategies' budgets; the toy has none for them to bound
    caps = {k: v for k, v in overrides.items() if k in BUDGET_CAPS} if default is DEFAULT_HYPERCLEAN else {}
    return BenchmarkConfig(benchmark, protocol, problem, caps)


def job_resources(benchmark: str, protocol: str, overrides: list[str]) -> dict[str, int]:
    """Memory (MB) and runtime (minutes) for one benchmark process and its strategy's process (1 GB more),
    sized for CPU nodes (GPUs are faster)."""
    if BENCHMARKS[benchmark]["mode"] == "toy":
        return {"mem_mb": 3_000, "runtime": 15}
    parsed = parse_overrides(overrides)
    outer = min(LARGEST_OUTER_ITR, parsed.get("max_outer_itr", LARGEST_OUTER_ITR))
    seconds = outer / CPU_ITERATIONS_PER_SECOND[BENCHMARKS[benchmark]["net"]]
    return {"mem_mb": 4_000, "runtime": 10 + math.ceil(2 * seconds / 60)}
