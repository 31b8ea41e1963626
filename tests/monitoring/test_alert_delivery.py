"""Pages reach someone: a real Alertmanager with the lab's configuration (the routing of
monitoring/alertmanager/alertmanager.yml, every receiver delivering to the alert sink)
delivers pages to pager and chat, tickets to tickets, the Watchdog to the heartbeat, with
their runbook links; inhibited alerts are not delivered; when the heartbeat stops, the
sink's dead man's switch pages, and it resolves when the heartbeat returns.

The routing is not shortened for the test: the alerts are posted as started a minute ago,
so their groups' waits are already over and Alertmanager flushes them at once (as it
does for alerts older than their group_wait); the switch's deadline is 20 s here."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from monitoring_services import alertmanager_argv, start, wait_http
from test_alert_sink import _start_sink
from test_alertmanager_config import ALERTMANAGER_FILE, alertmanager_filters

from local_processes import free_port


def _alert(**labels: str) -> dict:
    now = datetime.now(UTC)
    return {
        "labels": {"team": "sre", **labels},
        "annotations": {"runbook_url": f"https://runbooks.example/{labels['alertname']}.md"},
        "startsAt": (now - timedelta(minutes=1)).isoformat(),
        "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }


def _delivered(sink: str) -> set[tuple[str, str, str]]:
    rows = httpx.get(f"{sink}/notifications").json()["notifications"]
    return {(r["receiver"], r["alertname"], r["labels"].get("zone", "")) for r in rows}


def _wait_for(sink: str, expected: set[tuple[str, str, str]], seconds: float) -> set:
    deadline = time.monotonic() + seconds
    while not expected <= (seen := _delivered(sink)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return seen


def test_pages_tickets_and_the_heartbeat_reach_the_sink_as_routed(tmp_path: Path) -> None:
    sink_port, am_port = free_port(), free_port()
    sink_url = f"http://127.0.0.1:{sink_port}"
    routing = ALERTMANAGER_FILE.read_text(encoding="utf-8")
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        alertmanager_filters.alertmanager_config(
            routing, alertmanager_filters.alert_sink_receivers(routing, sink_url), ["pager"]
        )
    )
    sink = _start_sink(tmp_path, sink_port, deadline=20)
    alertmanager = start(
        "alertmanager", alertmanager_argv(tmp_path, am_port, config=config), tmp_path
    )
    am_url = f"http://127.0.0.1:{am_port}"
    try:
        wait_http(alertmanager, f"{am_url}/-/ready")
        # ZoneDown first, as in the lab (its `for` is shorter than InstanceDown's): an
        # inhibition holds once Alertmanager's inhibitor has taken in the source alert,
        # which it does asynchronously; alerts posted together race it on a busy machine.
        sources = [
            _alert(alertname="Watchdog", severity="none"),
            _alert(alertname="ZoneDown", severity="page", zone="a"),
        ]
        httpx.post(f"{am_url}/api/v2/alerts", json=sources).raise_for_status()
        pages = {
            ("heartbeat", "Watchdog", ""),
            ("pager", "ZoneDown", "a"),
            ("chat", "ZoneDown", "a"),
        }
        assert pages <= _wait_for(sink_url, pages, 30)
        targets = [
            _alert(alertname="InstanceDown", severity="ticket", zone="a", instance="app-a1:9100"),
            _alert(alertname="InstanceDown", severity="ticket", zone="b", instance="app-b1:9100"),
        ]
        httpx.post(f"{am_url}/api/v2/alerts", json=targets).raise_for_status()
        ticket = {("tickets", "InstanceDown", "b")}
        seen = _wait_for(sink_url, ticket, 90)
        assert ticket <= seen
        # zone a's InstanceDown is inhibited by ZoneDown{zone="a"}: nobody gets it
        assert not {row for row in seen if row[1] == "InstanceDown" and row[2] == "a"}, seen
        assert not {row for row in seen if row[0] == "pager" and row[1] != "ZoneDown"}, seen
        rows = httpx.get(f"{sink_url}/notifications", params={"receiver": "pager"}).json()
        assert rows["notifications"][0]["runbook_url"] == "https://runbooks.example/ZoneDown.md"

        # the pipeline stops: no heartbeat for 20 s, the switch pages
        alertmanager.stop()
        missing = {("pager", "WatchdogMissing", "")}
        assert missing <= _wait_for(sink_url, missing, 40)
    finally:
        alertmanager.stop()
        sink.stop()
