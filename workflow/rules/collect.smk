# Tables: every run of the configuration in tidy form, then statistics over seeds.


# List the folders of every planned run, one a line: collect's input (a command line would grow with the plan).
rule list_runs:
    output:
        "results/tables/run_dirs.txt",
    log:
        "logs/list_runs.log",
    benchmark:
        "benchmarks/list_runs.tsv"
    params:
        text="".join(f"{run.run_dir}\n" for run in RUNS),
    run:
        from optrepro.files import write_text_atomic

        write_text_atomic(output[0], params.text)


# Gather record.json and run.log of every planned run into runs.csv and curves.csv (step, epoch and run lines).
rule collect:
    input:
        run_list="results/tables/run_dirs.txt",
        records=get_run_files("record.json"),
        logs=get_run_files("run.log"),
    output:
        runs="results/tables/runs.csv",
        curves="results/tables/curves.csv",
    log:
        "logs/collect.log",
    benchmark:
        "benchmarks/collect.tsv"
    conda:
        "../../environment.yml"
    shell:
        "python -m optrepro.collect --runs {output.runs} --curves {output.curves}"
        " --run-list {input.run_list} 2> {log}"


# Mean, std and 95% CI over seeds, the difference to each task's reference strategy and Welch's p.
rule summarize:
    input:
        runs="results/tables/runs.csv",
    output:
        summary=report("results/tables/summary.csv", caption="../report/summary.rst", category="Tables"),
    log:
        "logs/summarize.log",
    benchmark:
        "benchmarks/summarize.tsv"
    conda:
        "../../environment.yml"
    params:
        references=get_references(),
    shell:
        "python -m optrepro.report.summarize --runs {input.runs} --out {output.summary}" " {params.references} 2> {log}"
