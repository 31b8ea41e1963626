"""The lab's alerting pipeline end to end: Prometheus on mon evaluates the Watchdog,
Alertmanager routes it to the heartbeat receiver, and the alert sink (the lab's pager)
records it with its runbook link; the sink answers on mon's loopback only."""

from __future__ import annotations

import time

import pytest

import topology
from lab import pages, podman

pytestmark = pytest.mark.lab
HEARTBEAT_WAIT_S = 240  # Watchdog's `for` (1m), a rule evaluation, Alertmanager's group


def test_the_watchdog_heartbeat_reaches_the_lab_pager(lab) -> None:
    deadline = time.monotonic() + HEARTBEAT_WAIT_S
    while True:
        beats = pages.notifications(lab.settings, receiver="heartbeat", alertname="Watchdog")
        if beats or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert beats, f"no Watchdog heartbeat reached the alert sink in {HEARTBEAT_WAIT_S} s"
    assert beats[-1]["status"] == "firing"
    assert beats[-1]["severity"] == "none"
    assert beats[-1]["runbook_url"].endswith("/Watchdog.md"), beats[-1]
    # which environment paged: Prometheus's external label, from the inventory (Ansible's
    # own `environment` keyword once leaked in here as "[]")
    assert beats[-1]["labels"].get("environment") == "lab", beats[-1]["labels"]
    # a healthy lab: the dead man's switch has not paged
    assert pages.notifications(lab.settings, alertname="WatchdogMissing") == []


def test_the_alert_sink_answers_on_mons_loopback_only(lab) -> None:
    (mon,) = lab.hosts_in("mgmt")
    (app, *_) = lab.hosts_in("app")
    port = topology.load().port("alert_sink")
    probe = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"]
    on_mon = podman.exec_in(lab.container(mon.name), [*probe, f"http://127.0.0.1:{port}/healthz"])
    assert on_mon.stdout == "200"
    from_app = podman.exec_in(
        lab.container(app.name), [*probe, f"http://{mon.name}:{port}/healthz"], check=False
    )
    assert from_app.returncode != 0, from_app.stdout
