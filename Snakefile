# optrepro: reproduce ML optimization benchmarks and compare their strategies.
#   snakemake --cores all                                  full reproduction (config/config.yaml)
#   snakemake --cores all --configfile config/quick.yaml   quick scale
# The profile profiles/default is applied automatically.
from snakemake.utils import min_version

min_version("9.0")


# A --configfile replaces the default configuration instead of being merged into it,
# so a quick or test configuration never inherits tasks it did not ask for
# (--config KEY=VALUE still overrides single keys of whichever file is used).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


# Cheap steps that read or write many small files run where snakemake runs (on a cluster,
# the login node) instead of waiting in the queue; so do downloads (compute nodes are often offline).
localrules:
    all,
    fetch_data,
    write_config,
    list_runs,
    collect,
    summarize,
    draw_figures,
    render_report,


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/collect.smk"
include: "workflow/rules/report.smk"


# Every run's record is requested too: Snakemake does not regenerate a missing file that only up-to-date outputs
# depend on (it takes it for a removed temporary one), so a record removed to rerun its run would be ignored.
rule all:
    default_target: True
    input:
        "reports/report.html",
        get_run_files("record.json"),
