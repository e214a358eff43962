# Two entry points: `make demo` and `make test`. Both create .venv and install everything first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mlhunt-installed
# CPU wheel of PyTorch, installed before anything else and pinned: left to a dependency's loose
# requirement, pip would pull a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: setup demo test lint bench fuzz clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile scripts/system-deps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[all,dev,bench,privacy,postgres]' $(TORCH)
	bash scripts/system-deps.sh
	$(BIN)/python -m mlhunt.hunt.detectors._warm
	@touch $(STAMP)

demo: setup
	$(BIN)/mlhunt demo --examples examples --output mlhunt-report

test: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/python -m pytest -q -n 2

# The full fuzz budget (tens of thousands of inputs per parser); `make test` runs a small one.
fuzz: setup
	MLHUNT_FUZZ=full $(BIN)/python -m pytest -q -n 2 -m fuzz

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

bench: setup
	$(BIN)/python -m bench model

clean:
	rm -rf $(VENV) mlhunt-report .pytest_cache .ruff_cache
