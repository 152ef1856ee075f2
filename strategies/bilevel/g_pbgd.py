"""Baseline `g_pbgd` (bilevel.md §10; a leaderboard baseline).

Gradient-norm penalty method (G-PBGD) everywhere; lr_inner and inner_itr are unused and
keep their dataclass defaults.
Toy: g_pbgd, gams (10.0,), alpha0 0.1 -> step 0.01.
Linear: lrx 0.3, lry 0.5, gamma 0.0 -> 37.0 over 5,000 outer steps, outer_itr 40,000
(the official G-PBGD script's command-line defaults).
MLP: lrx 0.5, lry 0.5, gamma 0.0 -> 37.0 over 30,000, outer_itr 50,000.
reg 0.0, eval_interval 10. Any other `net` raises ValueError, as in the original.
"""


def get_toy_strategy() -> ToyStrategy:
    return ToyStrategy(method="g_pbgd", gams=(10.0,), alpha0=0.1)


def get_hyperclean_strategy(net: str) -> HypercleanStrategy:
    if net == "linear":
        return HypercleanStrategy(
            method="g_pbgd",
            lrx=0.3,
            lry=0.5,
            gamma_init=0.0,
            gamma_max=37.0,
            gamma_argmax_step=5000,
            outer_itr=40_000,
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
