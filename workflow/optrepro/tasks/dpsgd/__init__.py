"""DP-SGD on MNIST, Fashion-MNIST and CIFAR-10 (docs/tasks/dpsgd.md); the driver is `python -m optrepro.tasks.dpsgd`.

`audit` (a verdict token, not a number) is in FINAL_METRICS but not in
METRICS, which lists the numeric metrics a report summarises. A run the
driver does not find private (`private` 0) keeps its numbers in the report but
is never ranked (`ranking_exclusion`); a spend above the target under a
standard accountant is shown beside a ranked run (`caveat`).
"""

from .config import (
    BENCHMARKS,
    DATASETS,
    OVERRIDE_FIELDS,
    PROTOCOLS,
    job_resources,
    parse_overrides,
    resolve_config,
)

METRICS = {"score": "higher", "accuracy": "higher", "best_accuracy": "higher", "epsilon": "lower",
           "epsilon_rdp": "lower", "audit_ratio": "higher"}


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

# The task's interface (optrepro.tasks), read by the workflow and the report without torch.
__all__ = ["BENCHMARKS", "DATASETS", "OVERRIDE_FIELDS", "PROTOCOLS", "job_resources", "parse_overrides",
           "resolve_config", "METRICS", "ranking_exclusion", "caveat"]
