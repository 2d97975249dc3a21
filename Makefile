# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export PLANHAT_PIPELINES_CONFIG ?= $(CURDIR)/planhat_pipelines.yaml

.PHONY: install demo dev test lint bench emulators clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

install: $(STAMP)

emulators: $(STAMP)
	bash scripts/setup_bigquery_emulator.sh

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m planhat_pipelines.cli demo

dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m planhat_pipelines.cli seed-demo
	$(VENV)/bin/dagster dev -w workspace.yaml

test: $(STAMP) emulators
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check planhat_pipelines planhat_pipelines_tests benchmarks
	$(VENV)/bin/ruff format --check planhat_pipelines planhat_pipelines_tests benchmarks
	$(VENV)/bin/mypy

bench: $(STAMP) emulators
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .emulators .data .dagster_home/storage .dagster_home/history .dagster_home/schedules
