"""Monitoring of the shop: Prometheus configuration, rules, Alertmanager, dashboards.

The Python modules here generate and render the files beside them:
`slo_rules` (recording rules and burn-rate alerts from slos.yml),
`prometheus_config` (prometheus.yml from the topology) and `dashboards`
(the Grafana JSON). Run them with `make rules` and `make dashboards`.
"""

from pathlib import Path

MONITORING_DIR = Path(__file__).resolve().parent
REPO_DIR = MONITORING_DIR.parent
RULES_DIR = MONITORING_DIR / "rules"
RUNBOOKS_DIR = REPO_DIR / "runbooks"
# The base of every alert's runbook_url. Prometheus adds it to the alerts as the
# external label `runbook_base_url` (prometheus.yml.j2), so this is the one place to change it.
DEFAULT_RUNBOOK_BASE_URL = "https://github.com/example-shop/shop-ops-bundle/blob/main/runbooks"
