# `make run` serves on the embedded defaults; `make test` runs the whole test suite.
# Both create .venv when it is missing and install the pinned requirements into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint format install install-test browser bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-test.txt

run: install
	$(BIN)/python run.py

# The browser test of /docs drives Debian's headless Chromium (never a downloaded browser).
browser:
	@test -x /usr/bin/chromedriver -a -x /usr/bin/chromium || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)

test: install-test browser
	$(BIN)/python -m pytest -q tests

# ruff (lint and format) and mypy, configured in pyproject.toml; CI runs it before the tests.
lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Rewrite the tree in the house format and apply ruff's safe fixes.
format: install-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache
