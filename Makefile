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

SANDBOX_HOST ?= 127.0.0.1
SANDBOX_ADMIN ?= # default: 127.0.0.1 on the topology's partners_metrics port

.PHONY: sandboxes
sandboxes: deps ## Partners: all sandboxes (payments, couriers, SMTP sink, admin) on the topology ports
	$(PY) -m app.sandbox --host $(SANDBOX_HOST)

.PHONY: partners-test
partners-test: deps ## Partners: the partners suite only
	$(BIN)/pytest -q tests/partners

.PHONY: fault
fault: ## Partners: turn a sandbox knob, e.g. make fault SERVICE=card-primary KNOBS="outage=true"
	@test -n "$(SERVICE)" -a -n "$(KNOBS)" || { echo 'usage: make fault SERVICE=<service> KNOBS="knob=value ..."'; exit 2; }
	$(PY) -m app.sandbox.knobs $(if $(SANDBOX_ADMIN),--admin $(SANDBOX_ADMIN)) set $(SERVICE) $(KNOBS)

.PHONY: faults-reset
faults-reset: ## Partners: every sandbox knob back to normal
	$(PY) -m app.sandbox.knobs $(if $(SANDBOX_ADMIN),--admin $(SANDBOX_ADMIN)) reset


# --- monitoring (monitoring/, runbooks/) ------------------------------------

.PHONY: rules
rules: $(STAMP_PY) ## Regenerate the SLO rules from monitoring/slos.yml, and the dashboards
	$(PY) -m monitoring.slo_rules
	$(PY) -m monitoring.dashboards

.PHONY: dashboards
dashboards: $(STAMP_PY) ## Regenerate monitoring/dashboards/*.json from panels.yml
	$(PY) -m monitoring.dashboards

.PHONY: rules-test
rules-test: deps ## promtool checks and unit tests of every alert, Alertmanager, runbooks
	$(BIN)/pytest tests/monitoring/test_alert_rules.py tests/monitoring/test_alertmanager_config.py tests/monitoring/test_runbooks.py -k "not real_alertmanager"

.PHONY: prometheus-config
prometheus-config: $(STAMP_PY) ## Print prometheus.yml rendered for the lab topology
	$(PY) -m monitoring.prometheus_config

# --- load tests (loadtests/) ------------------------------------------------

PROFILE ?= smoke
TARGET ?= http://$(HOST):$(PORT)
DURATION ?=

.PHONY: loadtest
loadtest: WORKERS = 0
loadtest: deps ## Load test: PROFILE=smoke|average|peak|spike|soak|step TARGET=url WORKERS=n DURATION=2m
	$(PY) -m loadtests run --profile $(PROFILE) --target $(TARGET) --workers $(WORKERS) \
		$(if $(DURATION),--duration $(DURATION))

.PHONY: loadtest-profiles
loadtest-profiles: deps ## List the load profiles and their phases
	$(PY) -m loadtests profiles

# --- infra (infra/) ---------------------------------------------------------

STACK ?= dev

.PHONY: infra-test
infra-test: deps ## Infra: every stack under Pulumi mocks, Security Hub policies, reachability
	$(BIN)/pytest -q tests/infra

.PHONY: infra-model
infra-model: deps ## Infra: the mocked resources of one stack as JSON (STACK=dev|staging|prod)
	$(PY) tests/infra/mocked_stack.py $(STACK)


# --- lab (lab/, playbooks/) -------------------------------------------------
