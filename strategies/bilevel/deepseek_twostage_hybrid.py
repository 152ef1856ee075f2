"""`deepseek_twostage_hybrid`: deepseek-reasoner, episode 2, first edit (bilevel.md §11.2).

Tested ("Test #1", with recorded output).
Idea: a two-stage toy penalty schedule (1 then 10), bigger V-PBGD steps and a stronger
penalty for the linear model, G-PBGD with a milder penalty for the MLP.
Toy: v_pbgd, gams (1.0, 10.0), alpha0 0.1. The driver only ever uses the first gamma
(gamma 1, step 0.1); the second entry only makes a failure count 40,000 steps.
Linear: v_pbgd, lrx 0.15, lry 0.15, lr_inner 0.01, gamma 0.0 -> 0.3 over 25,000,
outer_itr 40,000, inner_itr 1.
MLP: g_pbgd, lrx 0.3, lry 0.5, gamma 0.0 -> 30.0 over 20,000, outer_itr 60,000.
reg 0.0, eval_interval 10. Any other `net` raises ValueError (as the baselines do).
"""


def get_toy_strategy() -> ToyStrategy:
    return ToyStrategy(method="v_pbgd", gams=(1.0, 10.0), alpha0=0.1)


def get_hyperclean_strategy(net: str) -> HypercleanStrategy:
    if net == "linear":
        return HypercleanStrategy(
            method="v_pbgd",
            lrx=0.15,
            lry=0.15,
            lr_inner=0.01,
            gamma_init=0.0,
            gamma_max=0.3,
            gamma_argmax_step=25_000,
            outer_itr=40_000,
            inner_itr=1,
            reg=0.0,
            eval_interval=10,
        )
    if net == "mlp":
        return HypercleanStrategy(
            method="g_pbgd",
            lrx=0.3,
            lry=0.5,
            gamma_init=0.0,
            gamma_max=30.0,
            gamma_argmax_step=20_000,
            outer_itr=60_000,
            reg=0.0,
            eval_interval=10,
        )
    raise ValueError(f"Unsupported net: {net}")
