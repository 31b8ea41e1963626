# The front door. `make help` lists the targets.
# Everything runs from the project venv (.venv), which `make deps` builds from
# requirements.lock; system packages come from scripts/apt-packages.txt.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_SYSTEM ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP_PY := $(VENV)/.installed-python
STAMP_APT := $(VENV)/.installed-apt

HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# --- set-up -----------------------------------------------------------------

$(STAMP_APT): scripts/apt-packages.txt scripts/install-system-packages.sh
	@mkdir -p $(VENV)
	scripts/install-system-packages.sh
	@touch $@

$(STAMP_PY): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON_SYSTEM) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	@touch $@

.PHONY: deps
deps: $(STAMP_APT) $(STAMP_PY) ## Install system packages and the venv

.PHONY: lock
lock: ## Re-pin every Python dependency into requirements.lock
	$(PYTHON_SYSTEM) -m pip install -q uv
	$(PYTHON_SYSTEM) -m uv pip compile pyproject.toml --all-extras --python-version 3.11 -o requirements.lock

# --- quality ----------------------------------------------------------------

.PHONY: lint
lint: deps ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

.PHONY: test
test: deps lint ## Install what is needed and run the whole suite
	$(BIN)/pytest

# --- the shop (app/) --------------------------------------------------------

# --- partners (app/partners, app/sandbox) -----------------------------------

# --- monitoring (monitoring/, runbooks/) ------------------------------------

# --- load tests (loadtests/) ------------------------------------------------

# --- infra (infra/) ---------------------------------------------------------

# --- lab (lab/, playbooks/) -------------------------------------------------
