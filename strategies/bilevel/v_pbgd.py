"""Baseline `v_pbgd` (bilevel.md §10; a leaderboard baseline), also the driver's default editable block.

Value-function penalty method (V-PBGD) everywhere.
Toy: v_pbgd, gams (10.0,), alpha0 0.1 -> step 0.01.
Linear: lrx 0.1, lry 0.1, lr_inner 0.01, gamma 0.0 -> 0.2 over 30,000 outer steps,
outer_itr 40,000, inner_itr 1 (the official V-PBGD script's command-line defaults).
MLP: lrx 0.1, lry 0.01, lr_inner 0.01, gamma 0.0 -> 0.1 over 10,000, outer_itr 80,000, inner_itr 1.
reg 0.0, eval_interval 10. Any other `net` raises ValueError, as in the original.
"""


def get_toy_strategy() -> ToyStrategy:
    return ToyStrategy(method="v_pbgd", gams=(10.0,), alpha0=0.1)


def get_hyperclean_strategy(net: str) -> HypercleanStrategy:
    if net == "linear":
        return HypercleanStrategy(
            method="v_pbgd",
            lrx=0.1,
            lry=0.1,
            lr_inner=0.01,
            gamma_init=0.0,
            gamma_max=0.2,
            gamma_argmax_step=30_000,
            outer_itr=40_000,
            inner_itr=1,
            reg=0.0,
            eval_interval=10,
        )
    if net == "mlp":
        return HypercleanStrategy(
            method="v_pbgd",
            lrx=0.1,
            lry=0.01,
            lr_inner=0.01,
            gamma_init=0.0,
            gamma_max=0.1,
            gamma_argmax_step=10_000,
            outer_itr=80_000,
            inner_itr=1,
            reg=0.0,
            eval_interval=10,
        )
    raise ValueError(f"Unsupported net: {net}")
