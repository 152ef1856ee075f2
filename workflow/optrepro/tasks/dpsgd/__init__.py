"""DP-SGD on MNIST, Fashion-MNIST and CIFAR-10 (docs/tasks/dpsgd.md); the driver is `python -m optrepro.tasks.dpsgd`.

`audit` (a verdict token, not a number) is in FINAL_METRICS but not among the declared metrics, which are the
numeric ones a report summarises. A run the driver does not find private (`private` 0) keeps its numbers in the
report but is never ranked (`ranking_exclusion`); a spend above the target under a standard accountant is shown
beside a ranked run (`caveat`).
"""

import math

from ..spec import FigureSpec, TaskSpec
from .config import (
    BENCHMARKS,
    DATASETS,
    FOUR_DECIMALS,
    OVERRIDE_FIELDS,
    PROTOCOLS,
    job_resources,
    parse_overrides,
    resolve_config,
)


def ranking_exclusion(run) -> str:
    """Why a run may not be ranked as private at its target ('' when it may): the driver's `private` verdict
    (driver.is_private) explained from the audit's."""
    if run.get("private") != 0:
        return ""
    audit = str(run.get("audit"))
    if audit == "data-dependent":
        return "not private: its noise scale depends on the data (audit: data-dependent)"
    if audit == "not-audited":
        return "not private: the mechanism could not be audited"
    return f"not private at the reported noise: the audit measured {audit.partition(':')[2]} of it ({audit})"


def caveat(run) -> str:
    """What a reader must see beside a ranked run: a spend above the target under a standard accountant, which
    `mlsbench` (the benchmark's own formula) does not count."""
    rdp, target = run.get("epsilon_rdp"), run.get("target_epsilon")
    if isinstance(rdp, (int, float)) and isinstance(target, (int, float)) and rdp > target * (1 + 1e-9):
        return f"ε under a standard accountant (Opacus RDP) {rdp:.1f} > target {target:g}"
    return ""


TASK = TaskSpec(
    name="dpsgd",
    summary="DP-SGD on MNIST, Fashion-MNIST and CIFAR-10",
    benchmarks=BENCHMARKS,
    protocols=PROTOCOLS,
    metrics={"score": "higher", "accuracy": "higher", "best_accuracy": "higher", "epsilon": "lower",
             "epsilon_rdp": "lower", "audit_ratio": "higher"},
    ranges={"score": (0, 100), "accuracy": (0, 100), "best_accuracy": (0, 100),  # percentages
            "epsilon": (0, math.inf), "epsilon_rdp": (0, math.inf), "audit_ratio": (0, math.inf)},
    override_fields=OVERRIDE_FIELDS,
    parse_overrides=parse_overrides,
    resolve_config=resolve_config,
    job_resources=job_resources,
    driver="optrepro.tasks.dpsgd.driver",
    # set_global_seed(seed) before the model is built; the Poisson sampler's own generator seeded with it
    seed_fixes="the model's initialisation and every epoch's Poisson batches (the noise is the mechanism's own "
               "draw from the seeded global generator)",
    leaderboard_id="optimization-dp-sgd",
    check_overrides=("epochs=1", "max_train_examples=1024", "max_test_examples=1024"),  # 4 steps of 256
    strategy_functions=("DPMechanism",),
    # What the original module offered its editable block. `_compute_rdp_single_epoch` is left out: the sources
    # name it but not its formula, and the original never calls it.
    original_names=("argparse", "math", "os", "sys", "np", "torch", "nn", "F", "optim", "sp_optimize", "DataLoader",
                    "Subset", "datasets", "transforms", "compute_epsilon", "calibrate_noise_to_epsilon", "MNISTNet",
                    "CIFAR10Net", "compute_per_sample_gradients"),
    datasets=DATASETS,
    printed_decimals=FOUR_DECIMALS,
    # What every ε is a statement about (each record also names its accountant, sampling, neighbours and δ).
    metric_notes={
        "epsilon": "spent at the run's δ for add/remove neighbours; under `mlsbench` by the benchmark's own formula "
                   "over shuffled fixed-size batches, under `corrected` by Opacus's accountant over Poisson batches, "
                   "the sampling it assumes (a bound)",
        "epsilon_rdp": "Opacus RDP at the same δ and neighbours; a bound under `corrected`, under `mlsbench` (shuffled "
                       "batches) a figure for comparison, not a bound",
    },
    ranking_exclusion=ranking_exclusion,
    caveat=caveat,
    figures=(FigureSpec(
        "accuracy_vs_epsilon", "DP-SGD accuracy against ε",
        "Final test accuracy against the privacy budget ε: as the benchmark's own formula reports it (left) and as "
        "a standard subsampled-Gaussian RDP accountant computes it for the same noise (right), both at the run's "
        "δ for add/remove neighbours. The standard accountant assumes Poisson batches: `corrected` samples them, so "
        "its ε is a bound; `mlsbench` shuffles fixed-size batches, so its right-hand ε is a figure for comparison, "
        "not a bound. Small markers: single runs; large markers: mean over seeds; marker shape: dataset.",
        "optrepro.report.figures:accuracy_vs_epsilon"),),
)
