# `make run` starts the app (on sample_data/ in a new checkout: see SAMPLE); `make test` runs the tests.
# Both set up .venv first.
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

test: setup
	$(PYTHON) -m pytest -q tests
