"""`qwen_baseline_hybrid`: qwen--qwen3.6-plus:free, final strategy (episode 3; bilevel.md §11.6).

Its test call has no recorded output. Untested.
Idea: a mix of baselines -- the v_pbgd toy and linear blocks with the g_pbgd MLP block.
Toy: v_pbgd, gams (10.0,), alpha0 0.1 -> step 0.01.
Linear: the v_pbgd linear baseline (lrx 0.1, lry 0.1, lr_inner 0.01, gamma 0.0 -> 0.2 over
30,000, outer_itr 40,000, inner_itr 1).
MLP: the g_pbgd MLP baseline (lrx 0.5, lry 0.5, gamma 0.0 -> 37.0 over 30,000, outer_itr 50,000).
reg 0.0, eval_interval 10. Any other `net` raises ValueError (as the baselines do).
"""


def get_toy_strategy() -> ToyStrategy:
    return ToyStrategy(method="v_pbgd", gams=(10.0,), alpha0=0.1)


def get_hyperclean_strategy(net: str) -> HypercleanStrategy:
    if net == "linear":
        return HypercleanStrategy(
            method="v_pbgd",
            lrx=0.1,
            lry=0.1,
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
            gamma_max=37.0,
            gamma_argmax_step=30_000,
            outer_itr=50_000,
            reg=0.0,
            eval_interval=10,
        )
    raise ValueError(f"Unsupported net: {net}")
