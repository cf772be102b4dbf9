# `make run` serves on the embedded defaults; `make test` runs the whole test suite.
# Both create .venv when it is missing and install the pinned requirements into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install install-test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-test.txt

run: install
	$(BIN)/python run.py

test: install-test
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) .pytest_cache
