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
$(STAMP): pyproject.toml
	@echo "installing .venv (pip install -e '.[dev]')" >&2
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip >&2
	@$(BIN)/pip install --quiet -e '.[dev]' >&2
	@touch $(STAMP)

install: $(STAMP)

# checkov (tests/infra/k8s/test_checkov.py) in a virtualenv of its own: it pins packaging<24, which pytest 9 needs.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
$(CHECKOV_STAMP):
	@echo "installing $(CHECKOV_VENV) (pip install checkov==3.3.30)" >&2
	@test -d $(CHECKOV_VENV) || $(PYTHON) -m venv $(CHECKOV_VENV)
	@$(CHECKOV_VENV)/bin/pip install --quiet 'checkov==3.3.30' >&2
	@touch $(CHECKOV_STAMP)

# System packages the native stack and the tests run for real: Mosquitto and PostgreSQL (Debian).
install-system:
	@bash scripts/install-system.sh

test: install install-system $(CHECKOV_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

demo: install
	@bash scripts/demo.sh

bench: install install-system
	@$(BIN)/python -m bench $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .ruff_cache test-artifacts
