# Set-up, quick start, tests and checks. Every target installs what it needs into $(VENV) first.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
TORCH_VERSION ?= 2.13.0
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
EXTRAS ?= tests,zoo,wandb,benchmark

.PHONY: setup train test test-all lint format type check-codestyle commit-checks benchmark clean

# The CPU build of torch goes in first, so that no dependency pulls the CUDA build.
$(VENV)/.torch:
	@echo "Creating $(VENV) with the CPU build of torch $(TORCH_VERSION)..."
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check "torch==$(TORCH_VERSION)"
	touch $@

# Everything (tests, zoo, W&B, benchmark).
$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	@echo "Installing the package with every extra and the test tools into $(VENV)..."
	$(PIP) install --quiet --disable-pip-version-check -e ".[$(EXTRAS)]"
	touch $@

# Only what training needs (the package, and tqdm and rich for the progress bar).
$(VENV)/.installed-train: pyproject.toml $(VENV)/.torch
	@echo "Installing the package (and the progress bar) into $(VENV)..."
	$(PIP) install --quiet --disable-pip-version-check -e ".[extra]"
	touch $@

setup: $(VENV)/.installed

# Quick start 1/2: train REINFORCE on CartPole-v1 with its defaults and print the evaluation.
train: $(VENV)/.installed-train
	$(PY) benchmarks/cartpole.py --seeds 0 --timesteps 100000 --progress-bar

# Quick start 2/2: the test suite (slow tests are skipped; `make test-all` runs them too).
test: setup
	$(PY) -m pytest -n 2 -q

test-all: setup
	$(PY) -m pytest -n 2 -q -m ""

lint: setup
	$(VENV)/bin/ruff check .

format: setup
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

check-codestyle: setup
	$(VENV)/bin/ruff format --check .

type: setup
	$(VENV)/bin/mypy

commit-checks: lint check-codestyle type

# The learning benchmark of the README: 5 seeds, 100k steps each.
benchmark: setup
	$(PY) benchmarks/cartpole.py --seeds 0 1 2 3 4 --timesteps 100000 --out docs/results/cartpole_defaults.csv

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist *.egg-info
