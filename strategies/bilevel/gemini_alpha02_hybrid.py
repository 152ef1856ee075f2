"""`gemini_alpha02_hybrid`: google--gemini-3.1-pro-preview, final strategy (episode 3; bilevel.md §11.3).

Its test call has no recorded output. Untested.
Idea: a doubled toy step at the baseline penalty, larger V-PBGD steps for the linear
model, G-PBGD with a stronger penalty for the MLP.
Toy: v_pbgd, gams (10.0,), alpha0 0.2 -> step 0.02.
Linear: v_pbgd, lrx 0.2, lry 0.2, lr_inner 0.01, gamma 0.0 -> 0.2 over 30,000,
outer_itr 40,000, inner_itr 1.
MLP: g_pbgd, lrx 0.5, lry 0.5, gamma 0.0 -> 40.0 over 30,000, outer_itr 50,000.
reg 0.0, eval_interval 10. Any other `net` raises ValueError (as the baselines do).
"""


def get_toy_strategy() -> ToyStrategy:
    return ToyStrategy(method="v_pbgd", gams=(10.0,), alpha0=0.2)


def get_hyperclean_strategy(net: str) -> HypercleanStrategy:
    if net == "linear":
        return HypercleanStrategy(
            method="v_pbgd",
            lrx=0.2,
            lry=0.2,
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
            method="g_pbgd",
            lrx=0.5,
            lry=0.5,
            gamma_init=0.0,
            gamma_max=40.0,
            gamma_argmax_step=30_000,
            outer_itr=50_000,
            reg=0.0,
            eval_interval=10,
        )
    raise ValueError(f"Unsupported net: {net}")
