"""`cl_alpha02_inner3`: the project's seed conversation (claude-opus-4.6), a tested edit (bilevel.md §11.7).

Tested. (The episode's first edit equals `opus_gam7_hybrid` and is not repeated here.)
Idea: the doubled toy step at the baseline penalty, V-PBGD with three inner steps and a
stronger penalty for the linear model, G-PBGD up to gamma 42 for the MLP.
Toy: v_pbgd, gams (10.0,), alpha0 0.2 -> step 0.02.
Linear: v_pbgd, lrx 0.1, lry 0.1, lr_inner 0.01, gamma 0.0 -> 0.3 over 25,000,
outer_itr 50,000, inner_itr 3.
MLP: g_pbgd, lrx 0.5, lry 0.5, gamma 0.0 -> 42.0 over 35,000, outer_itr 65,000.
reg 0.0, eval_interval 10. Any other `net` raises ValueError (as the baselines do).
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
            gamma_max=0.3,
            gamma_argmax_step=25_000,
            outer_itr=50_000,
            inner_itr=3,
            reg=0.0,
            eval_interval=10,
        )
    if net == "mlp":
        return HypercleanStrategy(
            method="g_pbgd",
            lrx=0.5,
            lry=0.5,
            gamma_init=0.0,
            gamma_max=42.0,
            gamma_argmax_step=35_000,
            outer_itr=65_000,
            reg=0.0,
            eval_interval=10,
        )
    raise ValueError(f"Unsupported net: {net}")
