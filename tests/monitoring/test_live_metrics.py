"""Against the real stack (conftest `monitored_stack`): every target of the rendered
config is scraped, every rule evaluates, every dashboard query runs, and every metric
name in rules, dashboards and runbooks is one that the shop or an exporter exports."""

from __future__ import annotations

import httpx
import pytest
from monitoring_support import (
    all_rules,
    code_blocks,
    dashboard_queries,
    metric_names,
    promql_statements,
    recorded_names,
    runbook_pages,
    with_grafana_variables,
)

from monitoring import dashboards

# Names that cannot be produced here, and why.
NOT_PRODUCIBLE_HERE = {
    # Prometheus writes ALERTS only while an alert is pending or firing.
    "ALERTS",
}


def _used_names() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for rule in all_rules():
        for name in metric_names(rule["expr"]):
            used.setdefault(name, set()).add(f"rule {rule.get('alert') or rule.get('record')}")
    for dashboard, title, expr in dashboard_queries():
        for name in metric_names(expr):
            used.setdefault(name, set()).add(f"dashboard {dashboard}: {title}")
    for page in runbook_pages():
        for lang, body in code_blocks(page):
            if lang == "promql":
                for statement in promql_statements(body):
                    for name in metric_names(statement):
                        used.setdefault(name, set()).add(f"runbook {page.name}")
    return used


def test_every_target_of_the_rendered_config_is_up(monitored_stack) -> None:
    targets = httpx.get(f"{monitored_stack.prometheus_url}/api/v1/targets").json()["data"]
    health = {
        (t["labels"]["job"], t["labels"]["instance"]): (t["health"], t["lastError"])
        for t in targets["activeTargets"]
    }
    expected_jobs = set(monitored_stack.config["scrape_targets"]) | {
        "prometheus",
        "alertmanager",
        "blackbox",
        "blackbox_public",
        "shop_readiness",
    }
    assert {job for job, _ in health} == expected_jobs
    down = {target: state for target, state in health.items() if state[0] != "up"}
    assert not down


def test_probes_see_the_storefront_its_certificate_and_readiness(monitored_stack) -> None:
    public = monitored_stack.query('probe_success{job="blackbox_public"}')["data"]["result"]
    assert [float(r["value"][1]) for r in public] == [1.0]
    expiry = monitored_stack.query(
        'probe_ssl_earliest_cert_expiry{job="blackbox_public"} - time()'
    )["data"]["result"]
    days_left = float(expiry[0]["value"][1]) / 86400
    assert 29 < days_left <= 30, "the test certificate is valid for 30 days"
    ready = monitored_stack.query('probe_success{job="shop_readiness"}')["data"]["result"]
    assert [r["metric"]["zone"] for r in ready] == ["a"]
    assert float(ready[0]["value"][1]) == 1.0


def test_every_rule_evaluates_without_error(monitored_stack) -> None:
    groups = httpx.get(f"{monitored_stack.prometheus_url}/api/v1/rules").json()["data"]["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    expected = {rule.get("alert") or rule.get("record") for rule in all_rules()}
    assert loaded == expected
    broken = {
        rule["name"]: rule.get("lastError")
        for group in groups
        for rule in group["rules"]
        if rule["health"] != "ok"
    }
    assert not broken


def test_recording_rules_produce_the_slo_series(monitored_stack) -> None:
    result = monitored_stack.query("slo:objective:ratio")["data"]["result"]
    assert {r["metric"]["slo"]: float(r["value"][1]) for r in result} == {
        "storefront-availability": 0.999,
        "checkout-latency": 0.99,
    }
    # The shop served requests, none of them a 5xx: the availability SLI is exactly 0.
    errors = monitored_stack.query('slo:sli_error:ratio_rate5m{slo="storefront-availability"}')
    assert [float(r["value"][1]) for r in errors["data"]["result"]] == [0.0]


def test_checkout_latency_threshold_is_a_bucket_the_shop_exports(monitored_stack) -> None:
    buckets = monitored_stack.query(
        'count by (le) (shop_http_request_duration_seconds_bucket{job="shop"})'
    )["data"]["result"]
    assert "1.0" in {r["metric"]["le"] for r in buckets}


@pytest.mark.parametrize(
    ("dashboard", "title", "expr"), dashboard_queries(), ids=lambda v: str(v)[:60]
)
def test_dashboard_query_runs_in_prometheus(
    monitored_stack, dashboard: str, title: str, expr: str
) -> None:
    response = httpx.get(
        f"{monitored_stack.prometheus_url}/api/v1/query",
        params={"query": with_grafana_variables(expr)},
    )
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", body.get("error")


def test_dashboards_are_up_to_date() -> None:
    assert dashboards.main(["--check"]) == 0, "run `make dashboards`"


def test_every_metric_name_used_is_exported(monitored_stack) -> None:
    exported = monitored_stack.metric_names() | recorded_names() | NOT_PRODUCIBLE_HERE
    used = _used_names()
    unknown = {name: sorted(where) for name, where in used.items() if name not in exported}
    assert not unknown
    # Sanity: the check saw the app's, the exporters' and the recording rules' names.
    for expected in (
        "shop_http_requests_total",
        "pg_up",
        "node_cpu_seconds_total",
        "haproxy_server_status",
        "redis_up",
        "probe_success",
        "slo:sli_error:ratio_rate1h",
        "sandbox_requests_total",
    ):
        assert expected in used, expected


def test_allow_list_is_really_not_exported(monitored_stack) -> None:
    """An allow-listed name that the stack does export should leave the list."""
    exported = monitored_stack.metric_names()
    assert not (NOT_PRODUCIBLE_HERE & exported - {"ALERTS"})
