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
# Three pytest sessions (scripts/run-test-suite.sh): the lab built alone and its tests,
# then its drills in the background while every test outside the lab runs, then the lab
# removed. All always run; the target fails if any does (exit 5, nothing collected, too).
test: deps lint ## Install what is needed and run the whole suite
	BIN=$(BIN) scripts/run-test-suite.sh

# --- the shop (app/) --------------------------------------------------------

SEED_PRODUCTS ?= 10000
RUN_SANDBOXES ?= 1

# scripts/run-local.sh: one webhook secret per partner, made for the run (environment only),
# given to the shop and the sandboxes, and the sandboxes' webhooks pointed at the shop.
.PHONY: run
run: deps ## Serve the seeded shop on http://$(HOST):$(PORT) (WORKERS workers; every partner sandbox too unless RUN_SANDBOXES=0)
	@PY=$(PY) HOST=$(HOST) PORT=$(PORT) WORKERS=$(WORKERS) SEED_PRODUCTS=$(SEED_PRODUCTS) \
	  RUN_SANDBOXES=$(RUN_SANDBOXES) scripts/run-local.sh

.PHONY: seed
seed: deps ## Rebuild the deterministic catalog (SEED_PRODUCTS=10000; wipes orders, carts, users)
	$(PY) -m app.seed --products $(SEED_PRODUCTS)

.PHONY: migrate
migrate: deps ## Bring the database (DATABASE_URL) to the newest schema
	$(PY) -m app.db migrate

# Exit 0 none, 1 discrepancies listed, 2 could not check; the runbooks say how to read it.
SETTLE_SECONDS ?=

.PHONY: reconcile
reconcile: $(STAMP_PY) ## Orders vs payment ledgers vs mail outbox: one line per discrepancy (DATABASE_URL, PARTNERS_*; JSON=1 SETTLE_SECONDS=30)
	$(PY) -m app reconcile $(if $(JSON),--json) $(if $(SETTLE_SECONDS),--settle-seconds $(SETTLE_SECONDS))

.PHONY: app-test
app-test: deps ## The shop suite only (SQLite and PostgreSQL)
	$(BIN)/pytest -q tests/app

# `make bench` = the load tests' SLO benchmark (its prerequisite) + this core benchmark.
bench: deps ## Benchmarks: core (wrk: bare, product, search; checkout) and the SLO throughput one
	$(PY) -m bench.core --rounds $(or $(BENCH_REPS),3)


# --- partners (app/partners, app/sandbox) -----------------------------------

SANDBOX_HOST ?= 127.0.0.1
SANDBOX_ADMIN ?= # default: 127.0.0.1 on the topology's partners_metrics port

.PHONY: sandboxes
sandboxes: deps ## Partners: all sandboxes (payments, couriers, SMTP sink, admin) on the topology ports
	$(PY) -m app.sandbox --host $(SANDBOX_HOST)

.PHONY: partners-test
partners-test: deps ## Partners: the partners suite only
	$(BIN)/pytest -q tests/partners

# LAB=1: the knobs of the lab's partners host (run there: its admin port is mgmt-only).
KNOBS_CLI = $(if $(LAB),$(PY) -m lab fault,$(PY) -m app.sandbox.knobs $(if $(SANDBOX_ADMIN),--admin $(SANDBOX_ADMIN)))

.PHONY: fault
fault: ## Partners: turn a sandbox knob, e.g. make fault SERVICE=card-primary KNOBS="outage=true" [LAB=1]
	@test -n "$(SERVICE)" -a -n "$(KNOBS)" || { echo 'usage: make fault SERVICE=<service> KNOBS="knob=value ..." [LAB=1]'; exit 2; }
	$(KNOBS_CLI) set $(SERVICE) $(KNOBS)

.PHONY: faults-reset
faults-reset: ## Partners: every sandbox knob back to normal [LAB=1]
	$(KNOBS_CLI) reset


# --- monitoring (monitoring/, runbooks/) ------------------------------------

.PHONY: rules
rules: $(STAMP_PY) ## Regenerate the alert rules (monitoring/rules/src, slos.yml, config.yml), and the dashboards
	$(PY) -m monitoring.render_rules
	$(PY) -m monitoring.dashboards

.PHONY: dashboards
dashboards: $(STAMP_PY) ## Regenerate monitoring/dashboards/*.json from panels.yml
	$(PY) -m monitoring.dashboards

.PHONY: rules-test
rules-test: deps ## promtool checks and unit tests of every alert, Alertmanager, runbooks
	$(BIN)/pytest tests/monitoring/test_alert_rules.py tests/monitoring/test_rule_sources.py tests/monitoring/test_alertmanager_config.py tests/monitoring/test_runbooks.py -k "not real_alertmanager"

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

BENCH_REPS ?= 3

# `make bench` runs this part (as a prerequisite) and any recipe the shop section gives it.
.PHONY: bench bench-slo
bench: bench-slo
bench-slo: deps ## Benchmark: rps at the SLO of journey mix, endpoints, bare endpoint, no-op (BENCH_REPS=3)
	$(PY) -m bench.slo_throughput --repetitions $(BENCH_REPS)

# --- infra (infra/) ---------------------------------------------------------

STACK ?= dev

.PHONY: infra-test
infra-test: deps ## Infra: every stack under Pulumi mocks, Security Hub policies, reachability
	$(BIN)/pytest -q tests/infra

.PHONY: infra-model
infra-model: deps ## Infra: the mocked resources of one stack as JSON (STACK=dev|staging|prod)
	$(PY) tests/infra/mocked_stack.py $(STACK)


# --- lab (lab/, playbooks/) -------------------------------------------------

# Published loopback ports come from topology/topology.yml (lab.published);
# override any of them: make lab LAB_PORT_EDGE_HTTPS=9443 LAB_PORT_PROMETHEUS=19090

.PHONY: lab
lab: deps ## The production shape on this machine: build, converge twice, verify, smoke load, report
	$(PY) -m lab up
	$(PY) -m lab converge --idempotent
	LAB_REUSE=1 $(BIN)/pytest -m "lab and not drill" tests/lab -q
	$(PY) -m lab report

.PHONY: lab-up
lab-up: $(STAMP_PY) ## Create the lab's hosts, or start those that are stopped (no converge)
	$(PY) -m lab up

.PHONY: lab-fault
lab-fault: $(STAMP_PY) ## Bring a fault into the lab (FAULT=zone-down|cache-down|payment-outage|...; CLEAR=1 clears it)
	@test -n "$(FAULT)" || { $(PY) -m drills list; echo 'usage: make lab-fault FAULT=<fault> [CLEAR=1]'; exit 2; }
	$(PY) -m drills fault $(FAULT) $(if $(CLEAR),--clear)

.PHONY: lab-drills
lab-drills: $(STAMP_PY) ## Fault drills on the lab under load, report in reports/drills/ (DRILL=<name> for one)
	$(PY) -m drills run $(DRILL)

.PHONY: lab-status
lab-status: ## Lab hosts, networks, addresses, health, firing alerts, memory (JSON=1 for JSON)
	@$(PY) -m lab status $(if $(JSON),--json)

.PHONY: lab-shell
lab-shell: ## A shell where every runbook command runs against the lab as written (ssh app-a1 ...)
	@$(PY) -m lab shell

.PHONY: lab-pages
lab-pages: ## What the lab's pager received (RECEIVER=pager|chat|tickets|heartbeat, JSON=1)
	@$(PY) -m lab pages $(if $(RECEIVER),--receiver $(RECEIVER)) $(if $(JSON),--json)

.PHONY: lab-down
lab-down: ## Remove the lab's containers and networks (keeps the cached base image)
	$(PY) -m lab down
