"""`cl_alpha02_reg`: the project's seed conversation (claude-opus-4.6), its final edit (bilevel.md §11.7).

Tested.
Idea: the doubled toy step at the baseline penalty, the v_pbgd linear baseline with a
somewhat stronger but faster-rising penalty, and the regularised G-PBGD MLP of `cl_gam6_reg`.
Toy: v_pbgd, gams (10.0,), alpha0 0.2 -> step 0.02.
Linear: v_pbgd, lrx 0.1, lry 0.1, lr_inner 0.01, gamma 0.0 -> 0.25 over 20,000,
outer_itr 40,000 (inner_itr 1, reg 0.0: defaults).
MLP: as `cl_gam6_reg` -- g_pbgd, lrx 0.5, lry 0.5, gamma 0.0 -> 40.0 over 25,000,
outer_itr 60,000, reg 0.001.
eval_interval 10. Any other `net` raises ValueError (as the baselines do).
"""


def get_toy_strategy() -> ToyStrategy:
    return ToyStrategy(method="v_pbgd", gams=(10.0,), alpha0=0.2)


def get_hyperclean_strategy(net: str) -> HypercleanStrategy:
    if net == "linear":
        return HypercleanStrategy(
            method="v_pbgd",
            lrx=0.1,
            lry=0.1,
            lr_inner=0.01,
            gamma_init=0.0,
            gamma_max=0.25,
            gamma_argmax_step=20_000,
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
            gamma_max=40.0,
            gamma_argmax_step=25_000,
            outer_itr=60_000,
            reg=0.001,
            eval_interval=10,
        )
    raise ValueError(f"Unsupported net: {net}")
