"""`ds_gam_ladder`: the project's seed conversation (deepseek-reasoner), a tested edit (bilevel.md §11.7).

Tested. (The episode's first two edits equal `deepseek_twostage_hybrid` and
`deepseek_gam5_toy` and are not repeated here.)
Idea: a toy penalty ladder (1, 10, 100), a linear V-PBGD penalty ramped up to 1.0, and the
g_pbgd MLP baseline.
Toy: v_pbgd, gams (1.0, 10.0, 100.0), alpha0 0.1. The driver only ever uses the first gamma
(gamma 1, step 0.1); the list only makes a failure count 60,000 steps.
Linear: v_pbgd, lrx 0.1, lry 0.1, lr_inner 0.01, gamma 0.0 -> 1.0 over 30,000,
outer_itr 40,000 (inner_itr 1: default).
MLP: g_pbgd, lrx 0.5, lry 0.5, gamma 0.0 -> 37.0 over 30,000, outer_itr 50,000 (the g_pbgd
MLP baseline).
reg 0.0, eval_interval 10. Any other `net` raises ValueError (as the baselines do).
"""


def get_toy_strategy() -> ToyStrategy:
    return ToyStrategy(method="v_pbgd", gams=(1.0, 10.0, 100.0), alpha0=0.1)


def get_hyperclean_strategy(net: str) -> HypercleanStrategy:
    if net == "linear":
        return HypercleanStrategy(
            method="v_pbgd",
            lrx=0.1,
            lry=0.1,
            lr_inner=0.01,
            gamma_init=0.0,
            gamma_max=1.0,
            gamma_argmax_step=30_000,
            outer_itr=40_000,
            inner_itr=1,
            reg=0.0,
            eval_interval=10,
        )
    if net == "mlp":
        return HypercleanStrategy(
            method="g_pbgd",
            lrx=0.5,
            lry=0.5,
            gamma_init=0.0,
            gamma_max=37.0,
            gamma_argmax_step=30_000,
            outer_itr=50_000,
            reg=0.0,
            eval_interval=10,
        )
    raise ValueError(f"Unsupported net: {net}")
