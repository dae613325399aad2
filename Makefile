# simple-ntpd: the two commands of the quick start are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit integration test-deps bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## run: start the daemon in the foreground with the embedded default configuration (127.0.0.1:11123)
run: $(STAMP)
	$(BIN)/simple-ntpd --default-config --foreground

## test-deps: system packages and tools the tests use (ntpsec clients, chronyd unpacked)
test-deps:
	bash scripts/install-test-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy src

## test: every test (lint, types, unit, property, integration)
test: $(STAMP) test-deps lint typecheck
	$(BIN)/pytest

bench: $(STAMP) test-deps
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache .hypothesis
