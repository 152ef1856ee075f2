"""Baseline `t_rhg` (bilevel.md §10; a leaderboard baseline): truncated RHG.

Toy: v_pbgd, gams (10.0,), alpha0 0.1 -> step 0.01.
Hyper-cleaning: as `rhg` but only the last K = 100 of the T = 500 inner steps are
back-propagated (method "t_rhg"; lr 0.001, outer_itr 100; lr_inner 0.1 linear, 0.4 MLP).
[UNCERTAIN] This block lies beyond the truncation of the stored task prompt. Following
bilevel.md §10: K = 100 with the other values as `rhg` comes from an agent's transcription
of the full prompt; eval_interval 1 and reg 0.0 are assumed (irrelevant/default for RHG);
the toy block is inferred from the leaderboard's toy numbers equalling v_pbgd's.
"""


def get_toy_strategy() -> ToyStrategy:
    return ToyStrategy(method="v_pbgd", gams=(10.0,), alpha0=0.1)


def get_hyperclean_strategy(net: str) -> HypercleanStrategy:
    if net == "linear":
        return HypercleanStrategy(
            method="t_rhg",
            lr_inner=0.1,
            outer_itr=100,
            lr=0.001,
            T=500,
            K=100,
            reg=0.0,
            eval_interval=1,
        )
    if net == "mlp":
        return HypercleanStrategy(
            method="t_rhg",
            lr_inner=0.4,
            outer_itr=100,
            lr=0.001,
            T=500,
            K=100,
            reg=0.0,
            eval_interval=1,
        )
    raise ValueError(f"Unsupported net: {net}")
