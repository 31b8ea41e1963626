"""alertmanager.yml: valid for amtool, routes by severity, and its inhibitions work in a
real Alertmanager."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from monitoring_services import run
from monitoring_support import MONITORING_DIR, alert_names

ALERTMANAGER_FILE = MONITORING_DIR / "alertmanager" / "alertmanager.yml"


def _config() -> dict:
    return yaml.safe_load(ALERTMANAGER_FILE.read_text(encoding="utf-8"))


def test_amtool_accepts_the_config() -> None:
    result = run(["amtool", "check-config", str(ALERTMANAGER_FILE)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_commented_receiver_examples_are_valid_once_uncommented(tmp_path: Path) -> None:
    lines = ALERTMANAGER_FILE.read_text(encoding="utf-8").splitlines()
    start = lines.index("receivers:")
    uncommented = lines[:start] + [re.sub(r"^(\s*)# ?", r"\1", line) for line in lines[start:]]
    full = tmp_path / "alertmanager.yml"
    full.write_text("\n".join(uncommented) + "\n", encoding="utf-8")
    config = yaml.safe_load(full.read_text(encoding="utf-8"))
    integrations = {
        key for receiver in config["receivers"] for key in receiver if key.endswith("_configs")
    }
    assert integrations == {"pagerduty_configs", "slack_configs", "webhook_configs"}
    result = run(["amtool", "check-config", str(full)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["severity=page", "alertname=PostgresDown"], "pager,chat"),
        (["severity=ticket", "alertname=HostMemoryLow"], "tickets"),
        (["alertname=SomethingWithoutSeverity"], "null"),
    ],
)
def test_routing_by_severity(labels: list[str], receivers: str) -> None:
    result = run(
        ["amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER_FILE}", *labels]
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receivers


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
