# fleetgen — every target sets up .venv on first use; only Python 3.11+ is needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
PORT ?=
PORT_ARG := $(if $(PORT),--port $(PORT),)

PIPELINE_CONFIG ?= conf/production.yaml
ENGINE ?= duckdb

.PHONY: help install lint test test-fast bench run-emulated run-production run-pipeline clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml app/core/generation/_native.c
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "fleetgen needs Python >= 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install fleetgen with its dev tools

lint: $(STAMP)  ## ruff, the layer contracts (import-linter) and mypy
	$(BIN)/ruff check app tests
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

test: lint  ## lint, then the whole test suite (what CI runs)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)  ## skip the slow real-time tests
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)  ## benchmarks; results in bench-results/bench.json
	$(BIN)/fleetgen bench --output bench-results/bench.json

run-emulated: $(STAMP)  ## the service in emulated mode (batches every 10 s) with the reference pipeline, dashboard on http://127.0.0.1:8080/ (PORT=8090 to change)
	$(BIN)/fleetgen run --config conf/emulated.yaml --with-pipeline $(PORT_ARG)

run-production: $(STAMP)  ## the service in production mode (hourly companies, 15-minute events; PORT=N to change)
	$(BIN)/fleetgen run --config conf/production.yaml $(PORT_ARG)

run-pipeline: $(STAMP)  ## the reference pipeline alone, beside a service or after a backfill (PIPELINE_CONFIG=conf/production.yaml, ENGINE=duckdb|spark)
	$(BIN)/fleetgen pipeline --config $(PIPELINE_CONFIG) --engine $(ENGINE)

clean:  ## remove the virtualenv and caches (not your data)
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
