# Training: one job per task x protocol x benchmark x strategy x seed.


# Run a fixed driver on one strategy; a failed run still writes its record.
rule train:
    input:
        strategy=get_strategy_file,
        driver=get_driver_sources,
        data=get_dataset_status,
    output:
        log=f"{plan.RUN_DIR}/run.log",
        record=f"{plan.RUN_DIR}/record.json",
    log:
        "logs/train/{task}/{protocol}/{benchmark}/{strategy}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{task}/{protocol}/{benchmark}/{strategy}/seed{seed}.tsv"
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
        run_dir=subpath(output.record, parent=True),
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
        " --strategy {input.strategy} --seed {wildcards.seed} --device {params.device}"
        " --scale {params.scale} {params.overrides} --config {params.run_config}"
        " --data-root {params.data_root} {params.datasets} --time-limit {params.time_limit} --sandbox {params.sandbox}"
        " --run-dir {params.run_dir} 2> {log}"
