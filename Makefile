# iotctl developer entry points. The README's quick start is `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install install-system test test-fast demo bench lint clean help

help:
	@echo "make install         create .venv with iotctl and the dev tools"
	@echo "make install-system  install Mosquitto and PostgreSQL from Debian (as root, when missing)"
	@echo "make test            run the whole test suite (installs what is missing first)"
	@echo "make demo            bring up the native stack, provision devices, publish sample traffic, tail it"
	@echo "make bench           run the benchmarks, print JSON, update docs/benchmarks.md"
	@echo "make lint            ruff"

# Recipes are silent and talk on stderr, so `make bench` prints nothing but its JSON on stdout.
# Two distributions from this checkout: the platform (services/, what the images install) and iotctl over it.
$(STAMP): pyproject.toml services/pyproject.toml
	@echo "installing .venv (pip install -e ./services -e '.[dev]')" >&2
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip >&2
	@$(BIN)/pip install --quiet -e ./services -e '.[dev]' >&2
	@touch $(STAMP)

install: $(STAMP)

# System packages the native stack and the tests run for real: Mosquitto and PostgreSQL (Debian).
install-system:
	@bash scripts/install-system.sh

test: install install-system
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

demo: install
	@bash scripts/demo.sh

bench: install install-system
	@$(BIN)/python -m bench $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts
