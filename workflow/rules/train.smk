# Training: one job per cell (task x protocol x benchmark x strategy), its seeds trained in turn in one driver
# process (or one per run: `train_job: run`); one rule per task (train_<task>), as tasks have seeds of their own.


for task in config["tasks"]:

    # Run a fixed driver on one strategy's seeds; a failed run still writes its record.
    rule:
        name:
            f"train_{task}"
        input:
            strategy=get_strategy_file,
            driver=get_driver_sources,
            data=get_dataset_status,
        output:
            logs=plan.job_outputs(config, task, "run.log"),
            records=plan.job_outputs(config, task, "record.json"),
        log:
            f"logs/train/{plan.job_wildcards(config)}.log",
        benchmark:
            f"benchmarks/train/{plan.job_wildcards(config)}.tsv"
        wildcard_constraints:
            task=task,
        group:
            get_train_group
        conda:
            "../../environment.yml"
        threads: config["train_threads"]
        resources:
            gres=get_train_gres,
            gpu_percent=get_train_gpu_percent,
            mem_mb=get_train_mem_mb,
            runtime=get_train_runtime,
        params:
            runs=get_job_seeds,
            overrides=lambda wildcards: " ".join(f"--set {o}" for o in plan.overrides(config, wildcards.task)),
            run_config=get_run_config,
            scale=config["scale"],
            data_root=DATA_ROOT,
            datasets=get_dataset_args,
            device=config["device"],
            sandbox=config["sandbox"],
            time_limit=get_time_limit,
        shell:
            "OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} python -m optrepro.runner"
            " --task {wildcards.task} --protocol {wildcards.protocol} --benchmark {wildcards.benchmark}"
            " --strategy {input.strategy} {params.runs} --device {params.device}"
            " --scale {params.scale} {params.overrides} --config {params.run_config}"
            " --data-root {params.data_root} {params.datasets} --time-limit {params.time_limit}"
            " --sandbox {params.sandbox} 2> {log}"
