# Regista — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=

.PHONY: run test install bench lint typecheck demo openapi docs clean test-services

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,demo]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install Regista with test tools

run: install ## Serve on http://127.0.0.1:8080 (SQLite + local blobs in ./regista-data)
	$(BIN)/regista serve $(ARGS)

test-services: ## Start PostgreSQL if installed but stopped; install chromium for UI tests
	@bash scripts/test-services.sh

test: install test-services ## Run the whole test suite (SQLite and PostgreSQL)
	$(BIN)/python -m pytest $(ARGS)

lint: install ## ruff + mypy
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: install test-services ## Benchmarks; results written to docs/benchmarks.md
	$(BIN)/python -m bench $(ARGS)

demo: install ## Fill ./regista-data with a realistic demo portfolio, then serve it
	@if [ -e regista-data ]; then echo "regista-data exists: serving it as it is (remove it for a fresh demo)"; \
	else $(BIN)/regista demo; fi
	$(BIN)/regista serve

openapi: install ## Regenerate docs/openapi.json and docs/cli.md
	$(BIN)/python -m regista.tools.gendocs

clean:
	rm -rf $(VENV) regista-data .pytest_cache .mypy_cache .ruff_cache
