# `make run` starts the app (on sample_data/ in a new checkout: see SAMPLE); `make test` runs the
# linters and every test; `make test-fast` the tests that take no browser, no PostgreSQL and no
# model training (under a minute). All set up .venv first.
PYTHON_BOOTSTRAP ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.requirements-installed
# FAIR's DINOv2 model code, which the backbone equivalence tests compare banana against: fetched
# once here, never at test time, and never installed (the tests import it from the wheel).
DINOV2_WHEEL := .whl/dinov2-0.0.1.dev2-py3-none-any.whl

.PHONY: setup run test test-fast lint

setup: $(INSTALLED) $(DINOV2_WHEEL)

# Re-installs only when requirements.txt or pyproject.toml changes. banana itself goes in editable,
# so every entry point (streamlit, the CLI, tests, benchmarks) imports it without sys.path changes.
$(INSTALLED): requirements.txt pyproject.toml
	test -x $(PYTHON) || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PYTHON) -m pip install -r requirements.txt
	$(PYTHON) -m pip install --no-deps --no-build-isolation -e .
	touch $(INSTALLED)

# Downloaded only while the wheel is missing.
$(DINOV2_WHEEL): | $(INSTALLED)
	$(PYTHON) -m pip download --no-deps --dest .whl dinov2==0.0.1.dev2

# The sample images go into the project (BANANA_PROJECT, else 'default') only when it does not exist
# yet and they are asked for: SAMPLE=1, the default unless BANANA_PROJECT names a project. So
# `BANANA_PROJECT=mine make run` never fills 'mine' with them (the app says how to add its images);
# `BANANA_PROJECT=mine make run SAMPLE=1` does, if 'mine' is new.
SAMPLE ?= $(if $(BANANA_PROJECT),0,1)

run: setup
ifeq ($(SAMPLE),1)
	$(PYTHON) -m app.cli ingest sample_data/images --if-new
endif
	$(PYTHON) -m streamlit run app/main.py --browser.gatherUsageStats=false

lint: setup
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy

test: lint
	$(PYTHON) -m pytest -q tests

test-fast: setup
	$(PYTHON) -m pytest -q -m "not e2e and not postgres and not slow" tests
