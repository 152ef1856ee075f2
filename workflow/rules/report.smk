# The report: tables, figures, reference comparison and provenance from the tables of rules/collect.smk.
# Every step also runs by hand; `python -m optrepro.report.rebuild` runs them all without Snakemake.
from optrepro.report.captions import figure_kinds
from optrepro.report.reference import reference_path


report: "../report/workflow.rst"


# The configuration's report.reference_file (at most one), an input of figures and report.
FIGURE_KINDS = figure_kinds()
REFERENCE_FILES = [str(path) for path in [reference_path(config)] if path]
REFERENCE_OPTION = " ".join(f"--reference {shlex.quote(path)}" for path in REFERENCE_FILES)


# Write the resolved configuration that the report shows, with what the plan left out and why.
rule write_config:
    output:
        "reports/config.json",
    log:
        "logs/write_config.log",
    benchmark:
        "benchmarks/write_config.tsv"
    params:
        text=json.dumps({**config, plan.PLAN_WARNINGS_KEY: PLAN_WARNINGS}, indent=2),
    run:
        from optrepro.files import write_text_atomic

        write_text_atomic(output[0], params.text)


# Draw training curves, point estimates, performance profiles and the task-specific figures.
rule draw_figures:
    input:
        runs="results/tables/runs.csv",
        curves="results/tables/curves.csv",
        summary="results/tables/summary.csv",
        reference=REFERENCE_FILES,
    output:
        report(
            directory("reports/figures"),
            patterns=["{kind,[a-z_]+}--{subject}.png"],
            caption="../report/figure.rst",
            category=lambda wildcards: FIGURE_KINDS[wildcards.kind].title,
            labels={"figure": "{subject}"},
        ),
    log:
        "logs/figures.log",
    benchmark:
        "benchmarks/figures.tsv"
    conda:
        "../../environment.yml"
    params:
        reference=REFERENCE_OPTION,
        captions={kind: info.caption for kind, info in FIGURE_KINDS.items()},
    shell:
        "python -m optrepro.report.figures --runs {input.runs} --curves {input.curves}"
        " --summary {input.summary} {params.reference} --out {output} 2> {log}"


# Render the report (HTML, Markdown, LaTeX tables, provenance.json) from the tables and figures.
rule render_report:
    input:
        run_list="results/tables/run_dirs.txt",
        runs="results/tables/runs.csv",
        summary="results/tables/summary.csv",
        figures="reports/figures",
        config="reports/config.json",
        reference=REFERENCE_FILES,
    output:
        html=report("reports/report.html", caption="../report/report.rst", category="Report"),
        markdown="reports/report.md",
        tables=directory("reports/tables"),
        provenance="reports/provenance.json",
    log:
        "logs/report.log",
    benchmark:
        "benchmarks/report.tsv"
    conda:
        "../../environment.yml"
    params:
        reference=REFERENCE_OPTION,
    shell:
        "python -m optrepro.report.render --runs {input.runs} --summary {input.summary}"
        " --figures {input.figures} --config {input.config} {params.reference} --run-list {input.run_list}"
        " --html {output.html}"
        " --markdown {output.markdown} --tables {output.tables} --provenance {output.provenance} 2> {log}"
