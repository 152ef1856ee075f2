# Datasets: fetched from their sources in order, verified against the configured sha256 manifest.


# Fetch one dataset into DATA_ROOT/{dataset}. The status file records ok or the failure; a failure
# does not stop the workflow: the runs that need the dataset are recorded as failed with its message,
# and the next invocation tries the fetch again (common.smk forgets failed statuses).
rule fetch_data:
    output:
        status=f"{DATA_ROOT}/{{dataset}}.status.json",
    log:
        "logs/fetch_data/{dataset}.log",
    benchmark:
        "benchmarks/fetch_data/{dataset}.tsv"
    conda:
        "../../environment.yml"
    params:
        root=subpath(output.status, parent=True),
        options=lambda wildcards: " ".join(shlex.quote(a) for a in plan.fetch_arguments(config, wildcards.dataset)),
    shell:
        "python -m optrepro.data fetch --dataset {wildcards.dataset} --root {params.root} {params.options}"
        " --status {output.status} > {log} 2>&1"
