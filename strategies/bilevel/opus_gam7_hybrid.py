"""`opus_gam7_hybrid`: anthropic--claude-opus-4.6, final strategy (bilevel.md §11.1).

The conversation's only edit; its test call has no recorded output. Untested.
Idea: a smaller toy penalty (larger step), a stronger and longer V-PBGD penalty for the
linear model with two inner steps, and G-PBGD for the MLP.
Toy: v_pbgd, gams (7.0,), alpha0 0.1 -> step ~0.01429.
Linear: v_pbgd, lrx 0.1, lry 0.1, lr_inner 0.02, gamma 0.0 -> 0.3 over 30,000,
outer_itr 50,000, inner_itr 2.
MLP: g_pbgd, lrx 0.5, lry 0.5, gamma 0.0 -> 40.0 over 35,000, outer_itr 60,000.
reg 0.0, eval_interval 10. Any other `net` raises ValueError (as the baselines do).
"""


def get_toy_strategy() -> ToyStrategy:
    return ToyStrategy(method="v_pbgd", gams=(7.0,), alpha0=0.1)


def get_hyperclean_strategy(net: str) -> HypercleanStrategy:
    if net == "linear":
        return HypercleanStrategy(
            method="v_pbgd",
            lrx=0.1,
            lry=0.1,
            lr_inner=0.02,
            gamma_init=0.0,
            gamma_max=0.3,
            gamma_argmax_step=30_000,
            outer_itr=50_000,
            inner_itr=2,
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
            gamma_argmax_step=35_000,
            outer_itr=60_000,
            reg=0.0,
            eval_interval=10,
        )
    raise ValueError(f"Unsupported net: {net}")
