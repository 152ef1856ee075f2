#!/usr/bin/env bash
# Snakemake runs this in a per-rule conda environment it made from environment.yml (--sdm conda): every rule
# runs the optrepro package, so install it, editable, from the checkout this script lies in.
set -euo pipefail
source_dir="$(cd "$(dirname "$0")" && pwd)"
if [[ ! -f "$source_dir/pyproject.toml" ]]; then
    echo "optrepro's source is not beside $0 (a workflow used as a remote module): install optrepro into the" \
         "environment that runs snakemake and run it without --sdm conda" >&2
    exit 1
fi
python -m pip install --quiet --no-deps -e "$source_dir"
