# digitrec: every command the README shows. `make serve` and `make test` set up what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
API_MODULES := digitrec.api digitrec.data digitrec.dataset digitrec.errors
# The public API's files: mypy --strict on these (make lint; tests/test_typing.py)
PUBLIC := src/digitrec/__init__.py src/digitrec/api.py src/digitrec/errors.py \
	src/digitrec/extras.py src/digitrec/data.py src/digitrec/dataset.py src/digitrec/predictor.py \
	src/digitrec/answers.py src/digitrec/evaluate.py
# axe-core, the accessibility checker the browser tests run in the page (from the npm registry).
AXE := $(VENV)/axe/node_modules/axe-core/axe.min.js

.PHONY: setup system serve train test test-all bench lint container-check docs clean

setup: $(STAMP)

# torch first, pinned: its CPU build installs from this machine's disk; a bare `torch` would pull CUDA.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==2.13.*"
	$(BIN)/pip install --quiet -e ".[train,serve,dev]"
	touch $(STAMP)

# What only the tests need on top: Ray (digitrec batch). `make serve` never installs it.
$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[ray]"
	touch $(TEST_STAMP)

$(AXE):
	npm install --silent --no-audit --no-fund --prefix $(VENV)/axe axe-core@4.14.1

# System packages the tests need: Chromium (browser tests), PostgreSQL (feedback on a database),
# curl (a 413 read by curl).
system:
	@bash tools/install-system.sh

serve: setup
	$(BIN)/digitrec serve

train: setup
	$(BIN)/digitrec train --model seed

test: $(TEST_STAMP) $(AXE) system
	$(BIN)/python -m pytest

test-all: $(TEST_STAMP) $(AXE) system
	$(BIN)/python -m pytest -m "slow or not slow"

bench: setup
	$(BIN)/python benchmarks/inference.py

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/mypy src/digitrec
	$(BIN)/mypy --strict --follow-imports=silent $(PUBLIC)

# The API reference, from the docstrings (pdoc; a warning is an error): build/api/index.html
docs: setup
	$(BIN)/python -W error -m pdoc $(API_MODULES) -o build/api

# Build the Containerfile with podman, run it, ask /readyz (root on Debian; installs podman).
container-check: setup
	PYTHON=$(BIN)/python bash tools/container-check.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
