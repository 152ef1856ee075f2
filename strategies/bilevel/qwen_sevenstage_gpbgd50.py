"""`qwen_sevenstage_gpbgd50`: qwen--qwen3.6-plus:free, episode 1's edit (bilevel.md §11.6).

Never tested (episode 1 ends after the edit).
Idea: a seven-stage toy penalty ladder and G-PBGD with a fast-rising, large penalty for
both hyper-cleaning models.
Toy: v_pbgd, gams (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0), alpha0 0.2. The driver only ever
uses the first gamma (gamma 1, step 0.2); the list only makes a failure count 140,000 steps.
Linear: g_pbgd, lrx 0.3, lry 0.5, gamma 0.0 -> 50.0 over 8,000, outer_itr 50,000.
MLP: g_pbgd, lrx 0.5, lry 0.5, gamma 0.0 -> 50.0 over 15,000, outer_itr 60,000.
reg 0.0, eval_interval 10. Any other `net` raises ValueError (as the baselines do).
"""


def get_toy_strategy() -> ToyStrategy:
    return ToyStrategy(method="v_pbgd", gams=(1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0), alpha0=0.2)


def get_hyperclean_strategy(net: str) -> HypercleanStrategy:
    if net == "linear":
        return HypercleanStrategy(
            method="g_pbgd",
            lrx=0.3,
            lry=0.5,
            gamma_init=0.0,
            gamma_max=50.0,
            gamma_argmax_step=8000,
            outer_itr=50_000,
            reg=0.0,
            eval_interval=10,
        )
    if net == "mlp":
        return HypercleanStrategy(
            method="g_pbgd",
            lrx=0.5,
            lry=0.5,
            gamma_init=0.0,
            gamma_max=50.0,
            gamma_argmax_step=15_000,
            outer_itr=60_000,
            reg=0.0,
            eval_interval=10,
        )
    raise ValueError(f"Unsupported net: {net}")
