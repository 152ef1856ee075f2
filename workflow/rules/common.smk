# Configuration checks and helper functions; the logic lives in optrepro.plan (installed with the package).
import json
import shlex
import sys

from optrepro import configuration, plan
from optrepro.data.manifest import status_path
from optrepro.report.summarize import config_references

plan.put_this_interpreter_first_on_path()

try:
    configuration.validate(config)  # the schema's defaults filled in: rules read no second default
    plan.check_config(config)
except configuration.WorkflowConfigError as error:
    raise WorkflowError(str(error)) from None

RUNS = plan.planned_runs(config)
DATA_ROOT = plan.data_root(config)
if workflow.is_main_process and not workflow.dryrun:  # not in job processes, which parse this file too
    for dataset in plan.retry_failed_fetches(config, RUNS):
        print(f"fetch of {dataset} failed last time; trying again (and the runs that lacked it)", file=sys.stderr)
PLAN_WARNINGS = plan.skipped_strategy_files(config)
if workflow.is_main_process:
    for warning in PLAN_WARNINGS:
        print(f"WARNING: {warning}", file=sys.stderr)


wildcard_constraints:
    task="[a-z]+",
    protocol="[a-z]+",
    benchmark="[A-Za-z0-9_.-]+",
    strategy=plan.STRATEGY_NAME.pattern,
    seed="-?[0-9]+",


def get_strategy_file(wildcards):
    return plan.strategy_file(config, wildcards.task, wildcards.strategy)


def get_driver_sources(wildcards):
    return plan.driver_sources(wildcards.task)


def get_dataset_status(wildcards):
    """The fetch status files of the datasets a run reads (none for parity); `ancient`, so that fetching again
    reruns only the runs whose records retry_failed_fetches removed, not every run of the dataset."""
    return [ancient(str(status_path(DATA_ROOT, d))) for d in plan.run_datasets(wildcards.task, wildcards.benchmark)]


def get_dataset_args(wildcards):
    return " ".join(f"--dataset {d}" for d in plan.run_datasets(wildcards.task, wildcards.benchmark))


def get_job_seeds(wildcards):
    """`--seed S --run-dir D` for each run of the job."""
    return " ".join(plan.job_seeds(config, dict(wildcards.items())))


def get_run_config(wildcards):
    """The part of the configuration one run depends on (plan.run_settings); a change reruns that run."""
    return shlex.quote(json.dumps(plan.run_settings(config, wildcards.task), sort_keys=True))


def get_run_files(name):
    return [f"{run.run_dir}/{name}" for run in RUNS]


def get_references():
    return " ".join(f"--reference {task}={strategy}" for task, strategy in config_references(config).items())


def get_train_mem_mb(wildcards):
    return plan.job_resources(config, wildcards.task, wildcards.benchmark, wildcards.protocol)["mem_mb"]


def get_train_runtime(wildcards):
    return plan.job_resources(config, wildcards.task, wildcards.benchmark, wildcards.protocol)["runtime"]


def get_time_limit(wildcards):
    """Seconds the runner gives each run (plan.time_limit: below a run's share of the job's runtime)."""
    return plan.time_limit(config, wildcards.task, wildcards.benchmark, wildcards.protocol)


def get_train_gres(wildcards):
    """Train jobs ask for one GPU where CUDA will be used: a cluster job, or a group sharing one, gets one."""
    return plan.gpu_gres(config)


def get_train_group(wildcards):
    """Jobs needing less than a whole GPU share one on a cluster (see plan.gpu_share_group); ignored here."""
    return plan.gpu_share_group(config, wildcards.task, wildcards.benchmark, wildcards.protocol)


def get_train_gpu_percent(wildcards):
    """The job's share of one GPU; `--resources gpu_percent=100` per GPU (profiles/default) caps jobs run here."""
    return plan.gpu_percent(config, wildcards.task, wildcards.benchmark, wildcards.protocol)
