# hotdesk: the two commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck importlint unit deps platform clean bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip==25.3
	@$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

deps: $(STAMP)

## Platform pieces installed from Debian and PyPI when we are root (libvirt + QEMU).
platform: deps
	@bash scripts/setup-platform.sh $(VENV)

## Start the broker (API + reconciler) on SQLite in ./data, with a demo pool.
run: platform
	$(BIN)/hotdesk serve

lint: deps
	$(BIN)/ruff check src tests bench

typecheck: deps
	$(BIN)/mypy src

importlint: deps
	$(BIN)/lint-imports

## The whole suite: lint, types, layering, then every test (SQLite and PostgreSQL).
test: platform lint typecheck importlint
	$(BIN)/pytest -q -ra $(PYTEST_ARGS)

bench: deps
	$(BIN)/python bench/bench_claims.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
