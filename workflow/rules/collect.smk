# Tables: every run of the configuration in tidy form, then statistics over seeds.


# Gather record.json and run.log of every planned run into runs.csv and curves.csv (step, epoch and run lines).
rule collect:
    input:
        records=get_run_files("record.json"),
        logs=get_run_files("run.log"),
    output:
        runs="results/tables/runs.csv",
        curves="results/tables/curves.csv",
    log:
        "logs/collect.log",
    params:
        run_dirs=[run.run_dir for run in RUNS],
    conda:
        "../../environment.yml"
    shell:
        "python -m optrepro.collect --runs {output.runs} --curves {output.curves}"
        " {params.run_dirs} 2> {log}"


# Mean, std and 95% CI over seeds, the difference to each task's reference strategy and Welch's p.
rule summarize:
    input:
        runs="results/tables/runs.csv",
    output:
        summary=report("results/tables/summary.csv", caption="../report/summary.rst", category="Tables"),
    log:
        "logs/summarize.log",
    params:
        references=get_references(),
    conda:
        "../../environment.yml"
    shell:
        "python -m optrepro.report.summarize --runs {input.runs} --out {output.summary}"
        " {params.references} 2> {log}"
