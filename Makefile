# make demo / make test work on a fresh machine with only Python 3.11, git and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The exact, reproducible set of every package (pyproject.toml holds compatible ranges only).
LOCK := constraints.txt

.PHONY: demo test lint typecheck unit bench clean lock

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[all,dev]'
	touch $(STAMP)

# After changing a range in pyproject.toml: resolve afresh in a scratch venv and freeze it.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet -e '.[all,dev]'
	{ sed -n '/^#/p' $(LOCK); .venv-lock/bin/python -m pip freeze --exclude-editable; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf .venv-lock

demo: $(STAMP)
	$(BIN)/autolearn demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

# Under the lock like the test venv, so a benchmark measures the versions `make test` tested;
# only the peers' own stacks (vectorbt's) are not in the lock and resolve within its pins. The
# benchmarks drive the control plane (replay, tuner, judge), hence `all`, not just the worker.
$(BENCH_STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -c $(LOCK) -e '.[all,dev,bench]'
	touch $(BENCH_STAMP)

# Benchmarks print ratios against peers measured in the same run (backtesting.py, vectorbt).
bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/run_all.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) .venv-lock build *.egg-info .pytest_cache .mypy_cache .ruff_cache demo-output
