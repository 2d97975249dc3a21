# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# `make demo WAREHOUSE=bigquery|snowflake`: the same demo against a local emulator, configured by
# examples/demo_$(WAREHOUSE).yaml (fakesnow accepts any password: a dummy one is exported). Each emulator demo
# has its own Dagster instance (.dagster_home_bigquery, .dagster_home_snowflake), so the runs, partitions and
# metadata plots of the three demos never mix.
WAREHOUSE ?= duckdb
export DAGSTER_HOME := $(CURDIR)/.dagster_home$(if $(filter duckdb,$(WAREHOUSE)),,_$(WAREHOUSE))
export PLANHAT_PIPELINES_CONFIG ?= $(CURDIR)/planhat_pipelines.yaml

.PHONY: install demo dev serve test lint bench emulators browser deploy-lock clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

install: $(STAMP)

# The web app's browser test drives Debian's chromium through chromedriver (installed with apt when missing).
browser:
	bash scripts/setup_browser.sh

emulators: $(STAMP)
	bash scripts/setup_bigquery_emulator.sh
	bash scripts/setup_snowflake_emulator.sh
	bash scripts/setup_postgres.sh

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml $(if $(filter bigquery snowflake,$(WAREHOUSE)),emulators)
ifeq ($(WAREHOUSE),duckdb)
	$(PY) -m planhat_pipelines.cli demo
else ifneq ($(filter bigquery snowflake,$(WAREHOUSE)),)
	DEMO_SNOWFLAKE_PASSWORD=$${DEMO_SNOWFLAKE_PASSWORD:-demo} $(PY) -m planhat_pipelines.cli \
		--config $(CURDIR)/examples/demo_$(WAREHOUSE).yaml demo --emulator $(WAREHOUSE)
else
	@echo "error: WAREHOUSE=$(WAREHOUSE) is not one of: duckdb, bigquery, snowflake" >&2; exit 2
endif

# Both UIs: Dagster's (pipelines, runs, backfills) and the web app (Profiles, Data Explorer, OKRs, syncs), which
# reads the same store. Demo data is created only on the first start of the demo config (a config of your own is
# never seeded). dagster dev runs from DAGSTER_HOME: started beside the top-level dagster.yaml it would warn that
# that file "will not be used" (it is not: DAGSTER_HOME holds the copy that is). The web app stops with it.
DEV_PORT ?= 3000
WEB_PORT ?= 8765

dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m planhat_pipelines.cli seed-demo --if-missing
	@echo "Dagster UI:  http://127.0.0.1:$(DEV_PORT)   (pipelines, runs, backfills)"
	@echo "Web app:     http://127.0.0.1:$(WEB_PORT)   (portfolio, companies, Data Explorer, OKRs, syncs)"
	$(PY) -m planhat_pipelines.cli serve --port $(WEB_PORT) & web=$$!; \
	trap 'kill $$web 2>/dev/null' EXIT INT TERM; \
	cd $(DAGSTER_HOME) && $(CURDIR)/$(VENV)/bin/dagster dev -w $(CURDIR)/workspace.yaml -p $(DEV_PORT)

# The web app alone, on the store the config names (`make serve WEB_PORT=8800`).
serve: $(STAMP)
	$(PY) -m planhat_pipelines.cli serve --port $(WEB_PORT)

# The browser test needs chromium (`browser`). Both cores: each module's tests run in one worker (--dist loadfile), each worker starts its own emulators
# and PostgreSQL. PYTHONHASHSEED=0: every worker must collect the same test ids (xdist compares them).
test: $(STAMP) emulators browser
	PYTHONHASHSEED=0 $(PY) -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check planhat_pipelines planhat_pipelines_tests benchmarks tools deploy
	$(VENV)/bin/ruff format --check planhat_pipelines planhat_pipelines_tests benchmarks tools deploy
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy deploy/check_image.py
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(VENV)/bin/dg check defs

bench: $(STAMP) emulators
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/run.py

# The image's pinned packages (deploy/requirements.txt): what `pip install '.[deploy]'` resolves to in a fresh
# virtualenv today. Run after changing pyproject.toml's dependencies; test_image_steps.py checks the result.
deploy-lock:
	rm -rf .deploy-lock-venv
	$(PYTHON) -m venv .deploy-lock-venv
	.deploy-lock-venv/bin/python -m pip install --quiet --upgrade pip
	.deploy-lock-venv/bin/python -m pip install --quiet '.[deploy]'
	sed -n '/^#/p' deploy/requirements.txt > deploy/requirements.txt.new
	.deploy-lock-venv/bin/python -m pip freeze --exclude planhat_pipelines >> deploy/requirements.txt.new
	mv deploy/requirements.txt.new deploy/requirements.txt
	rm -rf .deploy-lock-venv

clean:
	rm -rf $(VENV) .emulators .data .dagster_home/storage .dagster_home/history .dagster_home/schedules \
		.dagster_home_bigquery .dagster_home_snowflake
