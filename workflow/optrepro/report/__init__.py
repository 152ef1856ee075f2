"""From runs.csv and curves.csv to what a reader takes away, one concern per module:

* `summarize`: statistics over seeds per cell and metric (summary.csv), directions from each task's TaskSpec;
* `stats`: the statistics themselves (CI, Welch's test, ranks, performance profiles);
* `reference`: reference numbers beside reproduced ones, and their importer from original-benchmark logs;
* `lineage`: the runs behind each table cell and where they disagree (provenance.json);
* `tables`: the report's tables as one model; `figures` (with `captions`): the figures;
* `render`: HTML, Markdown and LaTeX from that model (templates/); `rebuild`: every output without training.
"""
