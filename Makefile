# `make run` starts the app on sample_data/; `make test` runs the tests. Both set up .venv first.
PYTHON_BOOTSTRAP ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.requirements-installed

.PHONY: setup run test

setup: $(INSTALLED)

# Re-installs only when requirements.txt changes.
$(INSTALLED): requirements.txt
	test -x $(PYTHON) || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PYTHON) -m pip install -r requirements.txt
	touch $(INSTALLED)

run: setup
	$(PYTHON) -m app.cli ingest sample_data/images
	$(PYTHON) -m streamlit run app/main.py --browser.gatherUsageStats=false

test: setup
	$(PYTHON) -m pytest -q tests
