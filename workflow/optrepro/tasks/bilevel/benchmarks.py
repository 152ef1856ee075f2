"""The bilevel task's benchmarks, protocols, scale overrides and job sizes, without torch.

Three benchmark commands (bilevel.md §4.2). Two protocols: `mlsbench` runs
what the original ran (the toy's defective x-derivative of f; hyper-cleaning
reports the best test accuracy over all evaluations, a choice made on the test
set); `corrected` uses the exact derivative and adds, for hyper-cleaning, the
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
from dataclasses import fields, replace

from ..scale import parse_overrides as parse_field_overrides
from .config import DEFAULT_TOY, ToyProblemConfig
from .hyperclean_config import DEFAULT_HYPERCLEAN, HypercleanConfig, HypercleanStrategy

BENCHMARKS = {"toy-convergence": {"mode": "toy"},
              "hyperclean-linear": {"mode": "hyperclean", "net": "linear"},
              "hyperclean-mlp": {"mode": "hyperclean", "net": "mlp"}}
PROTOCOLS = {"mlsbench": {"exact_gradient": False}, "corrected": {"exact_gradient": True}}
# The datasets a benchmark reads (names of optrepro.data); the workflow fetches and hashes them.
DATASETS = {"hyperclean-linear": "mnist", "hyperclean-mlp": "mnist"}

BUDGET_CAPS = {"max_outer_itr": int, "max_unroll": int}
OVERRIDE_TYPES = {**{f.name: type(getattr(DEFAULT_TOY, f.name)) for f in fields(ToyProblemConfig)},
                  **{f.name: type(getattr(DEFAULT_HYPERCLEAN, f.name)) for f in fields(HypercleanConfig)},
                  **BUDGET_CAPS}
# Outer iterations per second on one CPU thread, measured on the full 5,000-example problem (README);
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
    """The strategy with the scale's budget caps applied (unchanged without caps)."""
    for cap in BUDGET_CAPS:
        if cap in overrides and overrides[cap] <= 0:
            raise ValueError(f"{cap} must be positive, got {overrides[cap]}.")
    changes = {}
    if "max_outer_itr" in overrides:
        changes["outer_itr"] = min(strategy.outer_itr, overrides["max_outer_itr"])
    if "max_unroll" in overrides and strategy.method in ("rhg", "t_rhg"):
        changes["T"] = min(strategy.T, overrides["max_unroll"])
        changes["K"] = min(strategy.K, changes["T"])
    return replace(strategy, **changes)


def job_resources(benchmark: str, protocol: str, overrides: list[str]) -> dict[str, int]:
    """Memory (MB) and runtime (minutes) for one benchmark process, sized for CPU nodes (GPUs are faster)."""
    if BENCHMARKS[benchmark]["mode"] == "toy":
        return {"mem_mb": 2_000, "runtime": 15}
    parsed = parse_overrides(overrides)
    outer = min(LARGEST_OUTER_ITR, parsed.get("max_outer_itr", LARGEST_OUTER_ITR))
    seconds = outer / CPU_ITERATIONS_PER_SECOND[BENCHMARKS[benchmark]["net"]]
    return {"mem_mb": 3_000, "runtime": 10 + math.ceil(2 * seconds / 60)}
