"""`cl_gam6_reg`: the project's seed conversation (claude-opus-4.6), a tested edit (bilevel.md §11.7).

Tested.
Idea: a toy penalty of 6 with a larger base step, a slightly faster linear V-PBGD, and a
small L2 regulariser in the MLP's lower-level loss under G-PBGD.
Toy: v_pbgd, gams (6.0,), alpha0 0.18 -> step 0.03.
Linear: v_pbgd, lrx 0.12, lry 0.1, lr_inner 0.01, gamma 0.0 -> 0.3 over 20,000,
outer_itr 48,000 (inner_itr 1, reg 0.0: defaults).
MLP: g_pbgd, lrx 0.5, lry 0.5, gamma 0.0 -> 40.0 over 25,000, outer_itr 60,000, reg 0.001.
eval_interval 10. Any other `net` raises ValueError (as the baselines do).
"""


def get_toy_strategy() -> ToyStrategy:
    return ToyStrategy(method="v_pbgd", gams=(6.0,), alpha0=0.18)


def get_hyperclean_strategy(net: str) -> HypercleanStrategy:
    if net == "linear":
        return HypercleanStrategy(
            method="v_pbgd",
            lrx=0.12,
            lry=0.1,
            lr_inner=0.01,
            gamma_init=0.0,
            gamma_max=0.3,
            gamma_argmax_step=20_000,
            outer_itr=48_000,
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
            gamma_max=40.0,
            gamma_argmax_step=25_000,
            outer_itr=60_000,
            reg=0.001,
            eval_interval=10,
        )
    raise ValueError(f"Unsupported net: {net}")
