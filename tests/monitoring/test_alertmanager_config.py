"""alertmanager.yml: valid for amtool with each environment's receivers (the lab's alert
sink, AWS's SNS topic), routes by severity and the heartbeat, refuses a pager that
delivers nowhere, and its inhibitions work in a real Alertmanager."""

from __future__ import annotations

import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jinja2
import pytest
import yaml
from ansible.errors import AnsibleFilterError
from monitoring_services import run
from monitoring_support import MONITORING_DIR, alert_names

from loadtests.config import parse_duration
from tests.role_templates import RenderFailed, render_role_template

ALERTMANAGER_FILE = MONITORING_DIR / "alertmanager" / "alertmanager.yml"
PLAYBOOKS = MONITORING_DIR.parent / "playbooks"
AWS_GROUP_VARS = PLAYBOOKS / "inventories" / "aws" / "group_vars" / "all" / "main.yml"
sys.path.insert(0, str(PLAYBOOKS / "filter_plugins"))

import alertmanager_filters  # noqa: E402


def _config() -> dict:
    return yaml.safe_load(ALERTMANAGER_FILE.read_text(encoding="utf-8"))


def test_amtool_accepts_the_config() -> None:
    result = run(["amtool", "check-config", str(ALERTMANAGER_FILE)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _lab_config() -> str:
    """alertmanager.yml as the lab's monitoring role installs it (every receiver to the sink)."""
    routing = ALERTMANAGER_FILE.read_text(encoding="utf-8")
    receivers = alertmanager_filters.alert_sink_receivers(routing, "http://127.0.0.1:9095")
    return alertmanager_filters.alertmanager_config(routing, receivers, ["pager"])


def _aws_config() -> str:
    """alertmanager.yml as the AWS group_vars make it, with example stack outputs."""
    group_vars = yaml.safe_load(AWS_GROUP_VARS.read_text(encoding="utf-8"))
    context = {
        "aws_endpoints": {"alert_topic_arn": "arn:aws:sns:eu-central-1:123456789012:shop-alerts"},
        "vault_heartbeat_url": "https://hc-ping.example/4d1f",
    }
    context["monitoring_alert_topic_region"] = jinja2.Template(
        group_vars["monitoring_alert_topic_region"]
    ).render(context)
    rendered = jinja2.Template(
        yaml.safe_dump(group_vars["monitoring_alertmanager_receivers"])
    ).render(context)
    routing = ALERTMANAGER_FILE.read_text(encoding="utf-8")
    return alertmanager_filters.alertmanager_config(routing, yaml.safe_load(rendered), ["pager"])


@pytest.mark.parametrize("environment", ["lab", "aws"])
def test_each_environments_receivers_deliver_and_amtool_accepts_them(
    environment: str, tmp_path: Path
) -> None:
    text = _lab_config() if environment == "lab" else _aws_config()
    config = yaml.safe_load(text)
    delivering = {r["name"] for r in config["receivers"] if any(k.endswith("_configs") for k in r)}
    assert delivering == {"pager", "chat", "tickets", "heartbeat"}, environment
    assert config["route"] == _config()["route"]
    assert config["inhibit_rules"] == _config()["inhibit_rules"]
    path = tmp_path / "alertmanager.yml"
    path.write_text(text, encoding="utf-8")
    result = run(["amtool", "check-config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_monitoring_role_installs_the_routing_with_the_sinks_receivers(
    tmp_path: Path,
) -> None:
    overrides = {
        "monitoring_source_dir": str(MONITORING_DIR),
        "monitoring_alert_sink_enabled": True,
    }
    rendered = render_role_template("monitoring", "alertmanager.yml.j2", tmp_path, overrides)
    config = yaml.safe_load(rendered.read_text(encoding="utf-8"))
    pager = next(r for r in config["receivers"] if r["name"] == "pager")
    assert pager["webhook_configs"][0]["url"] == "http://127.0.0.1:9095/hooks/pager"
    assert config["route"] == _config()["route"]
    result = run(["amtool", "check-config", str(rendered)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_monitoring_role_refuses_a_pager_that_delivers_nowhere(tmp_path: Path) -> None:
    overrides = {"monitoring_source_dir": str(MONITORING_DIR)}  # no sink, no receivers
    with pytest.raises(RenderFailed, match="deliver nowhere"):
        render_role_template("monitoring", "alertmanager.yml.j2", tmp_path, overrides)


def test_a_pager_that_delivers_nowhere_fails_the_install() -> None:
    routing = ALERTMANAGER_FILE.read_text(encoding="utf-8")
    with pytest.raises(AnsibleFilterError, match=r"\['pager'\] deliver nowhere"):
        alertmanager_filters.alertmanager_config(routing, {}, ["pager"])
    with pytest.raises(AnsibleFilterError, match="the routing does not have"):
        alertmanager_filters.alertmanager_config(
            routing, {"pagr": {"webhook_configs": [{"url": "http://x"}]}}, []
        )


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["severity=page", "alertname=PostgresDown"], "pager,chat"),
        (["severity=ticket", "alertname=HostMemoryLow"], "tickets"),
        (["alertname=SomethingWithoutSeverity"], "null"),
        (["alertname=Watchdog", "severity=none"], "heartbeat"),
    ],
)
def test_routing_by_severity(labels: list[str], receivers: str) -> None:
    result = run(
        ["amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER_FILE}", *labels]
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receivers


def test_a_page_that_fires_again_goes_out_within_a_minute() -> None:
    # A group sends what changed only at its next group_interval tick: with the default
    # 5 minutes, a page that fired again soon after it resolved (the db-slow drill, after
    # payment-slow's page) waited up to 5 minutes to reach the pager.
    routing = _config()["route"]
    pages = [r for r in routing["routes"] if 'severity="page"' in r.get("matchers", [])]
    assert pages
    for route in pages:
        interval = route.get("group_interval", routing["group_interval"])
        assert parse_duration(interval) <= 60, (route["receiver"], interval)


def test_inhibit_rules_name_existing_alerts() -> None:
    names = alert_names()
    for rule in _config()["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            match = re.fullmatch(r'alertname(=~|=)"?([^"]+)"?', matcher)
            if match:
                assert set(match[2].split("|")) <= names, matcher


def _post(alertmanager_url: str, alerts: list[dict[str, str]]) -> None:
    now = datetime.now(UTC)
    body = [
        {
            "labels": labels,
            "annotations": {"summary": "test"},
            "startsAt": (now - timedelta(minutes=1)).isoformat(),
            "endsAt": (now + timedelta(minutes=10)).isoformat(),
        }
        for labels in alerts
    ]
    httpx.post(f"{alertmanager_url}/api/v2/alerts", json=body).raise_for_status()


def _inhibited(alertmanager_url: str, expected: int) -> dict[str, list[str]]:
    """alert fingerprint labels -> inhibitedBy, once Alertmanager has processed them."""
    deadline = time.monotonic() + 30
    while True:
        alerts = httpx.get(f"{alertmanager_url}/api/v2/alerts").json()
        if len(alerts) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return {
        ",".join(f"{k}={v}" for k, v in sorted(a["labels"].items())): a["status"]["inhibitedBy"]
        for a in alerts
    }


def test_inhibitions_in_a_real_alertmanager(monitored_stack) -> None:
    url = monitored_stack.alertmanager_url
    _post(
        url,
        [
            {"alertname": "ZoneDown", "zone": "a", "severity": "page", "team": "sre"},
            {
                "alertname": "InstanceDown",
                "zone": "a",
                "instance": "app-a1:8000",
                "job": "shop",
                "severity": "ticket",
                "team": "sre",
            },
            {
                "alertname": "InstanceDown",
                "zone": "b",
                "instance": "app-b1:8000",
                "job": "shop",
                "severity": "ticket",
                "team": "sre",
            },
            {
                "alertname": "PostgresDown",
                "instance": "db:9187",
                "job": "postgres",
                "severity": "page",
                "team": "sre",
            },
            {
                "alertname": "ShopInstanceNotReady",
                "zone": "c",
                "instance": "app-c1:8000",
                "job": "shop_readiness",
                "severity": "ticket",
                "team": "shop",
            },
        ],
    )
    # Inhibition is evaluated as alerts are read; give the source alerts a moment to land.
    time.sleep(1)
    status = _inhibited(url, expected=5)
    zone_a = next(v for k, v in status.items() if "InstanceDown" in k and "zone=a" in k)
    zone_b = next(v for k, v in status.items() if "InstanceDown" in k and "zone=b" in k)
    not_ready = next(v for k, v in status.items() if "ShopInstanceNotReady" in k)
    postgres = next(v for k, v in status.items() if "PostgresDown" in k)
    assert zone_a, "ZoneDown{zone=a} silences InstanceDown{zone=a}"
    assert not zone_b, "but not another zone's InstanceDown"
    assert not_ready, "PostgresDown silences the app's readiness alerts"
    assert not postgres
