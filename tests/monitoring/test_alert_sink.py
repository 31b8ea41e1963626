"""The alert sink (monitoring/alert_sink.py), run as the monitoring host runs it (Debian's
python3, standard library only): it records Alertmanager webhooks, lists them per alert
with filters, refuses what is not a webhook with a 400, keeps what it recorded across a
restart, and its dead man's switch pages once when the heartbeat stops and resolves when
it returns."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from monitoring_services import Service, start, wait_http

from local_processes import free_port
from monitoring import MONITORING_DIR

SINK = MONITORING_DIR / "alert_sink.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def _start_sink(workdir: Path, port: int, deadline: float = 600) -> Service:
    argv = [
        SYSTEM_PYTHON, str(SINK), "--listen", f"127.0.0.1:{port}",
        "--store", str(workdir / "notifications.jsonl"),
        "--heartbeat-deadline", str(deadline), "--check-every", "0.2",
        "--runbook-url", "https://runbooks.example/Watchdog.md",
    ]  # fmt: skip
    sink = start("alert-sink", argv, workdir)
    wait_http(sink, f"http://127.0.0.1:{port}/healthz")
    return sink


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    service = _start_sink(tmp_path, port, deadline=1)
    yield f"http://127.0.0.1:{port}"
    service.stop()


def _webhook(alertname: str, severity: str, status: str = "firing") -> dict:
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alertname}"}}',
        "status": status,
        "receiver": "ignored: the path names the receiver",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": alertname, "severity": severity, "zone": "a"},
                "annotations": {"runbook_url": f"https://runbooks.example/{alertname}.md"},
                "startsAt": "2026-12-02T10:00:00Z",
            }
        ],
    }


def test_notifications_are_recorded_and_listed_per_alert(sink: str) -> None:
    assert httpx.post(f"{sink}/hooks/pager", json=_webhook("ZoneDown", "page")).status_code == 200
    httpx.post(f"{sink}/hooks/tickets", json=_webhook("InstanceDown", "ticket")).raise_for_status()
    rows = httpx.get(f"{sink}/notifications").json()["notifications"]
    assert [(r["receiver"], r["alertname"], r["severity"]) for r in rows] == [
        ("pager", "ZoneDown", "page"),
        ("tickets", "InstanceDown", "ticket"),
    ]
    assert rows[0]["runbook_url"] == "https://runbooks.example/ZoneDown.md"
    paged = httpx.get(f"{sink}/notifications", params={"receiver": "pager"}).json()
    assert [r["alertname"] for r in paged["notifications"]] == ["ZoneDown"]
    later = httpx.get(f"{sink}/notifications", params={"since": time.time() + 60}).json()
    assert later["notifications"] == []


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/hooks/pager", b"not json", 400),
        ("/hooks/pager", b'{"alerts": "nope"}', 400),
        ("/hooks/pager", b"", 400),
        ("/hooks/", b"{}", 404),
        ("/elsewhere", b"{}", 404),
    ],
)
def test_what_is_not_a_webhook_is_refused_and_not_recorded(
    sink: str, path: str, body: bytes, status: int
) -> None:
    answer = httpx.post(f"{sink}{path}", content=body)
    assert answer.status_code == status
    assert "error" in answer.json()
    assert httpx.get(f"{sink}/notifications").json()["notifications"] == []


def test_a_restart_keeps_what_was_recorded(tmp_path: Path) -> None:
    port = free_port()
    first = _start_sink(tmp_path, port)
    httpx.post(f"http://127.0.0.1:{port}/hooks/pager", json=_webhook("ZoneDown", "page"))
    first.stop()
    second = _start_sink(tmp_path, port)
    try:
        rows = httpx.get(f"http://127.0.0.1:{port}/notifications").json()["notifications"]
    finally:
        second.stop()
    assert [r["alertname"] for r in rows] == ["ZoneDown"]


def _switch_pages(sink: str) -> list[tuple[str, str]]:
    rows = httpx.get(f"{sink}/notifications", params={"alertname": "WatchdogMissing"}).json()
    return [(r["receiver"], r["status"]) for r in rows["notifications"]]


def test_the_dead_mans_switch_pages_when_the_heartbeat_stops_and_resolves(sink: str) -> None:
    time.sleep(1.5)
    assert _switch_pages(sink) == [], "no page before the first heartbeat"
    httpx.post(f"{sink}/hooks/heartbeat", json=_webhook("Watchdog", "none")).raise_for_status()
    assert httpx.get(f"{sink}/heartbeat").json()["tripped"] is False
    deadline = time.monotonic() + 10
    while not _switch_pages(sink) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)  # and only once
    assert _switch_pages(sink) == [("pager", "firing")]
    page = httpx.get(f"{sink}/notifications", params={"alertname": "WatchdogMissing"}).json()
    assert page["notifications"][0]["runbook_url"] == "https://runbooks.example/Watchdog.md"
    httpx.post(f"{sink}/hooks/heartbeat", json=_webhook("Watchdog", "none")).raise_for_status()
    assert _switch_pages(sink) == [("pager", "firing"), ("pager", "resolved")]
