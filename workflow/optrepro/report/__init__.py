"""From runs.csv to what a reader sees: statistics over seeds (`summarize`) and the HTML report (`render`)."""
