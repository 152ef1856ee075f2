# Entry points; each creates the pinned environment in .venv first if needed (optrepro installed in it, editable).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SNAKEMAKE := $(BIN)/snakemake

.PHONY: quick verify full plan report check test lint bench

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

quick: $(VENV)/.installed  ## the whole workflow at quick scale -> reports/report.html
	$(SNAKEMAKE) --configfile config/quick.yaml

verify: $(VENV)/.installed  ## a real reproduction on a CPU in under 30 minutes: cells at their own budgets, judged against the original
	$(SNAKEMAKE) --configfile config/verify.yaml

full: $(VENV)/.installed  ## the full reproduction (config/config.yaml; GPU scale)
	$(SNAKEMAKE)

PLAN ?= config/config.yaml
plan: $(VENV)/.installed  ## runs per task/benchmark/protocol, memory and time per job, device hours (PLAN=...)
	$(BIN)/optrepro-plan --configfile $(PLAN)

CONFIG ?= config/quick.yaml
report: $(VENV)/.installed  ## rebuild every report output from existing results/ (also copied from elsewhere), no training (CONFIG=...)
	$(BIN)/optrepro-report --configfile $(CONFIG)

check: $(VENV)/.installed  ## run a strategy file's every benchmark at a small budget, one line each (STRATEGY=path)
	@test -n "$(STRATEGY)" || { echo "usage: make check STRATEGY=path/to/strategy.py" >&2; exit 2; }
	$(BIN)/python -m optrepro.check "$(STRATEGY)"

test: $(VENV)/.installed  ## the test suite
	$(BIN)/python -m pytest

lint: $(VENV)/.installed  ## ruff, snakefmt and Snakemake's own linter (what CI runs before the tests)
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check workflow
	$(SNAKEMAKE) --lint --configfile config/quick.yaml

bench: $(VENV)/.installed  ## speed benchmarks on this machine's best device
	$(BIN)/optrepro-data fetch --dataset mnist --root resources/data
	$(BIN)/python bench/parity_speed.py --device auto
	$(BIN)/python bench/bilevel_speed.py --device auto
	$(BIN)/python bench/dpsgd_speed.py --device auto
