# The report: tables per benchmark, failed runs with their reasons, provenance.


# Write the resolved configuration that the report shows.
rule resolved_config:
    output:
        "reports/config.json",
    log:
        "logs/resolved_config.log",
    params:
        text=json.dumps(config, indent=2, sort_keys=True),
    run:
        Path(output[0]).write_text(params.text)


# Render reports/report.html from the tables.
rule report:
    input:
        runs="results/tables/runs.csv",
        summary="results/tables/summary.csv",
        config="reports/config.json",
    output:
        html="reports/report.html",
    log:
        "logs/report.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m optrepro.report.render --runs {input.runs} --summary {input.summary}"
        " --config {input.config} --out {output.html} 2> {log}"
