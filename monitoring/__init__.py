"""Monitoring of the shop: Prometheus configuration, rules, Alertmanager, dashboards.

The Python modules here generate and render the files beside them:
`render_rules` (rules/*.rules.yml from rules/src/ and config.yml), `slo_rules`
(recording rules and burn-rate alerts from slos.yml), `prometheus_config`
(prometheus.yml from the topology) and `dashboards` (the Grafana JSON). Run them
with `make rules` and `make dashboards`.
"""

from pathlib import Path

MONITORING_DIR = Path(__file__).resolve().parent
REPO_DIR = MONITORING_DIR.parent
RULES_DIR = MONITORING_DIR / "rules"
RUNBOOKS_DIR = REPO_DIR / "runbooks"
# The selectors the rules share and the runbook link (its base included) are in
# config.yml, read by monitoring.config.
