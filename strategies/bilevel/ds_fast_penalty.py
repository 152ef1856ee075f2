"""`ds_fast_penalty`: the project's seed conversation (deepseek-reasoner), its final edit (bilevel.md §11.7).

Tested.
Idea: fast penalty ramps -- the linear V-PBGD penalty starts at 0.1 and reaches 2.0 within
5,000 steps (beyond 1 the objective is rescaled by 1/gamma), the MLP G-PBGD penalty reaches
37 within 10,000 steps; the toy uses gamma 5 with a doubled base step.
Toy: v_pbgd, gams (5.0,), alpha0 0.2 -> step 0.04.
Linear: v_pbgd, lrx 0.2, lry 0.2, lr_inner 0.01, gamma 0.1 -> 2.0 over 5,000,
outer_itr 40,000 (inner_itr 1: default).
MLP: g_pbgd, lrx 0.5, lry 0.5, gamma 0.0 -> 37.0 over 10,000, outer_itr 50,000.
reg 0.0, eval_interval 10. Any other `net` raises ValueError (as the baselines do).
"""


def get_toy_strategy() -> ToyStrategy:
    return ToyStrategy(method="v_pbgd", gams=(5.0,), alpha0=0.2)


def get_hyperclean_strategy(net: str) -> HypercleanStrategy:
    if net == "linear":
        return HypercleanStrategy(
            method="v_pbgd",
            lrx=0.2,
            lry=0.2,
            lr_inner=0.01,
            gamma_init=0.1,
            gamma_max=2.0,
            gamma_argmax_step=5000,
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
            gamma_argmax_step=10_000,
            outer_itr=50_000,
            reg=0.0,
            eval_interval=10,
        )
    raise ValueError(f"Unsupported net: {net}")
