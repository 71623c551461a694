# quantarena — every target sets itself up: `make demo` and `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.12 python3.11 python3; do command -v $$p >/dev/null && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup test demo demo-live bench lint format clean help gpu-check gpu-wheels

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

setup: $(STAMP)  ## create .venv and install quantarena with its extras (dev, ml)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python >= 3.11 not found — install it, or run: make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip setuptools wheel
	# torch is the optional `ml` extra; pin the CPU build first so pip does not fetch CUDA wheels
	$(BIN)/pip install -q "torch==2.13.0" || $(BIN)/pip install -q "torch>=2.4,<3" --index-url https://download.pytorch.org/whl/cpu
	$(BIN)/pip install -q -e ".[dev,ml]"
	@touch $@

test: $(STAMP)  ## run the test suite (real local Ray, Redis at 127.0.0.1:6379, MLflow on SQLite)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)  ## a two-year weekly tournament on real BTC hourly bars (configs/demo.yaml, a few minutes)
	$(BIN)/python -m quantarena.demo

demo-live: $(STAMP)  ## a small backtest tournament, then paper-trade 5 agents + its promoted gate passers on replayed real data through Redis (127.0.0.1:6379): weekly reallocations, demotions, a kill drill
	$(BIN)/python -m quantarena.live.demo

bench: $(STAMP)  ## run the benchmarks and print the figures recorded in docs/benchmarks.md
	$(BIN)/python -m benchmarks.run --record

lint: $(STAMP)  ## ruff check, format check and the package layering (import-linter)
	$(BIN)/ruff check quantarena tests benchmarks
	$(BIN)/ruff format --check quantarena tests benchmarks
	$(BIN)/lint-imports --no-logo

format: $(STAMP)  ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix quantarena tests benchmarks
	$(BIN)/ruff format quantarena tests benchmarks

# the GPU check runs on a GPU image as it is (no venv there): its python3, or .venv's if present
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
GPU_OUT ?= bench-output/gpu-check.md

gpu-check:  ## GPU parity tests + GPU benchmarks into one report, GPU_OUT (without a GPU: one line, exit 0)
	@$(GPU_PYTHON) -m benchmarks.gpu_check --out $(GPU_OUT)

gpu-wheels: $(STAMP)  ## download into .whl/ the wheels the GPU check needs beyond the GPU image (Python 3.12)
	$(BIN)/python -m benchmarks.gpu_check wheels --dest .whl --with optuna,cmaes

clean:  ## remove the virtual environment and outputs
	rm -rf $(VENV) demo-output .pytest_cache
