"""`gemini_ep1_gam2`: google--gemini-3.1-pro-preview, episode 1's edit (bilevel.md §11.3).

Its test call has no recorded output. Untested.
Idea: a small toy penalty with a proportionally small base step, a stronger and longer
V-PBGD run for the linear model, a more aggressive G-PBGD for the MLP.
Toy: v_pbgd, gams (2.0,), alpha0 0.04 -> step 0.02.
Linear: v_pbgd, lrx 0.2, lry 0.2, lr_inner 0.02, gamma 0.0 -> 0.5 over 40,000,
outer_itr 50,000, inner_itr 1.
MLP: g_pbgd, lrx 0.6, lry 0.6, gamma 0.0 -> 40.0 over 40,000, outer_itr 60,000.
reg 0.0, eval_interval 10. Any other `net` raises ValueError (as the baselines do).
"""


def get_toy_strategy() -> ToyStrategy:
    return ToyStrategy(method="v_pbgd", gams=(2.0,), alpha0=0.04)


def get_hyperclean_strategy(net: str) -> HypercleanStrategy:
    if net == "linear":
        return HypercleanStrategy(
            method="v_pbgd",
            lrx=0.2,
            lry=0.2,
            lr_inner=0.02,
            gamma_init=0.0,
            gamma_max=0.5,
            gamma_argmax_step=40_000,
            outer_itr=50_000,
            inner_itr=1,
            reg=0.0,
            eval_interval=10,
        )
    if net == "mlp":
        return HypercleanStrategy(
            method="g_pbgd",
            lrx=0.6,
            lry=0.6,
            gamma_init=0.0,
            gamma_max=40.0,
            gamma_argmax_step=40_000,
            outer_itr=60_000,
            reg=0.0,
            eval_interval=10,
        )
    raise ValueError(f"Unsupported net: {net}")
