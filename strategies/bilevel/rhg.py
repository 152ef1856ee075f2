"""Baseline `rhg` (bilevel.md §10; a leaderboard baseline): reverse-mode hypergradient.

Toy: the toy supports only the penalty methods, so this baseline's toy block is the
V-PBGD one (v_pbgd, gams (10.0,), alpha0 0.1 -> step 0.01).
Hyper-cleaning: full RHG, T = K = 500 unrolled inner steps (re-initialised classifier every
outer step), lr 0.001 for the example weights, outer_itr 100; lr_inner 0.1 (linear, the
official RHG script's default) and 0.4 (MLP). eval_interval 1 (RHG evaluates every step
anyway), reg 0.0. Any other `net` raises ValueError, as in the original.
"""


def get_toy_strategy() -> ToyStrategy:
    return ToyStrategy(method="v_pbgd", gams=(10.0,), alpha0=0.1)


def get_hyperclean_strategy(net: str) -> HypercleanStrategy:
    if net == "linear":
        return HypercleanStrategy(
            method="rhg",
            lr_inner=0.1,
            outer_itr=100,
            lr=0.001,
            T=500,
            K=500,
            reg=0.0,
            eval_interval=1,
        )
    if net == "mlp":
        return HypercleanStrategy(
            method="rhg",
            lr_inner=0.4,
            outer_itr=100,
            lr=0.001,
            T=500,
            K=500,
            reg=0.0,
            eval_interval=1,
        )
    raise ValueError(f"Unsupported net: {net}")
