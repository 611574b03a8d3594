# digitrec: every command the README shows. `make serve` and `make test` set up what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup system serve train test test-all bench lint clean

setup: $(STAMP)

# torch first, pinned: its CPU build installs from this machine's disk; a bare `torch` would pull CUDA.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==2.13.*"
	$(BIN)/pip install --quiet -e ".[train,serve,dev,ray]"
	touch $(STAMP)

# System packages the browser tests and the real-world test set need (Debian; root).
system:
	@bash tools/install-system.sh

serve: setup
	$(BIN)/digitrec serve

train: setup
	$(BIN)/digitrec train --model seed

test: setup system
	$(BIN)/python -m pytest

test-all: setup system
	$(BIN)/python -m pytest -m "slow or not slow"

bench: setup
	$(BIN)/python benchmarks/inference.py

lint: setup
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/mypy src/digitrec

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
