"""`qwen_multistage_inner5`: qwen--qwen3.6-plus:free, episode 2's edit (bilevel.md §11.6).

Tested ("Test #1", with recorded output).
Idea: a three-stage toy penalty list, and V-PBGD for both models with five inner steps per
outer step and a larger step on the example weights.
Toy: v_pbgd, gams (5.0, 10.0, 20.0), alpha0 0.1. The driver only ever uses the first gamma
(gamma 5, step 0.02); the list only makes a failure count 60,000 steps.
Linear: v_pbgd, lrx 0.3, lry 0.1, lr_inner 0.01, gamma 0.0 -> 0.3 over 20,000,
outer_itr 40,000, inner_itr 5.
MLP: v_pbgd, lrx 0.3, lry 0.01, lr_inner 0.01, gamma 0.0 -> 0.15 over 50,000,
outer_itr 80,000, inner_itr 5.
reg 0.0, eval_interval 10. Any other `net` raises ValueError (as the baselines do).
"""


def get_toy_strategy() -> ToyStrategy:
    return ToyStrategy(method="v_pbgd", gams=(5.0, 10.0, 20.0), alpha0=0.1)


def get_hyperclean_strategy(net: str) -> HypercleanStrategy:
    if net == "linear":
        return HypercleanStrategy(
            method="v_pbgd",
            lrx=0.3,
            lry=0.1,
            lr_inner=0.01,
            gamma_init=0.0,
            gamma_max=0.3,
            gamma_argmax_step=20_000,
            outer_itr=40_000,
            inner_itr=5,
            reg=0.0,
            eval_interval=10,
        )
    if net == "mlp":
        return HypercleanStrategy(
            method="v_pbgd",
            lrx=0.3,
            lry=0.01,
            lr_inner=0.01,
            gamma_init=0.0,
            gamma_max=0.15,
            gamma_argmax_step=50_000,
            outer_itr=80_000,
            inner_itr=5,
            reg=0.0,
            eval_interval=10,
        )
    raise ValueError(f"Unsupported net: {net}")
