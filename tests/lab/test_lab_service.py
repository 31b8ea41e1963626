"""The shop as customers and operators reach it, under load, and when a zone loses its server."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

import topology
from lab import podman, status
from tests.lab.steady_load import SteadyLoad
from tests.loadtests.verdict import assert_ran_and_behaved

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
TOPO = topology.load()
WAIT_S = 180


def wait_for(condition, what: str, timeout_seconds: float = WAIT_S, interval_s: float = 2.0):
    """Poll until condition() returns a truthy value (a wait, not a speed assertion)."""
    deadline = time.monotonic() + timeout_seconds
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval_s)
    pytest.fail(f"gave up waiting for {what} (last: {last!r})")


def prometheus_targets(lab) -> list[dict]:
    with lab.monitoring_client() as client:
        response = client.get(lab.url("prometheus") + "api/v1/targets")
    response.raise_for_status()
    return response.json()["data"]["activeTargets"]


def target_health(lab, job: str, instance: str) -> str | None:
    for target in prometheus_targets(lab):
        if target["labels"]["job"] == job and target["labels"]["instance"] == instance:
            return target["health"]
    return None


def test_shop_through_the_edge_from_loopback(lab):
    with httpx.Client(verify=lab.tls(), timeout=10) as client:
        response = client.get(lab.url("edge_https") + "api/products?page_size=1")
        assert response.status_code == 200
        assert response.json()["total"] > 0
        assert "max-age=" in response.headers["strict-transport-security"]


def test_http_redirects_to_https(lab):
    http_url = lab.url("edge_http")
    response = httpx.get(http_url + "api/products", follow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["location"] == lab.url("edge_https") + "api/products"


def test_shop_through_the_edge_from_the_client_host(lab):
    (client,) = lab.hosts_in("public")
    (edge,) = lab.hosts_in("dmz")
    result = podman.exec_in(
        lab.container(client.name),
        ["curl", "-sS", "--fail", f"https://{edge.name}/api/products?page_size=1"],
    )
    assert json.loads(result.stdout)["total"] > 0
    redirect = podman.exec_in(
        lab.container(client.name),
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            f"http://{edge.name}/readyz",
        ],
    )
    assert redirect.stdout == f"301 https://{edge.name}/readyz"


def test_all_prometheus_targets_up(lab):
    def all_up():
        targets = prometheus_targets(lab)
        down = [
            (t["labels"]["job"], t["labels"]["instance"], t["lastError"])
            for t in targets
            if t["health"] != "up"
        ]
        return targets if targets and not down else None

    targets = wait_for(all_up, "every scrape target up")
    jobs = {t["labels"]["job"] for t in targets}
    assert {job.job for job in TOPO.scrape_jobs} <= jobs
    shop = {
        t["labels"]["instance"]: t["labels"].get("zone")
        for t in targets
        if t["labels"]["job"] == "shop"
    }
    assert shop == {f"{h.name}:{TOPO.port('app')}": h.zone for h in lab.hosts_in("app")}


def test_prometheus_finds_alertmanager_over_https(lab):
    """Alerting logs in to Alertmanager like the scrapes do (a 401 would drop it from here)."""
    (mon,) = lab.hosts_in("mgmt")

    def discovered():
        with lab.monitoring_client() as client:
            response = client.get(lab.url("prometheus") + "api/v1/alertmanagers")
        response.raise_for_status()
        return [a["url"] for a in response.json()["data"]["activeAlertmanagers"]]

    urls = wait_for(discovered, "Prometheus to discover Alertmanager")
    assert urls == [f"https://{mon.name}:{TOPO.port('alertmanager')}/api/v2/alerts"]


def test_alertmanager_answers(lab):
    with lab.monitoring_client() as client:
        response = client.get(lab.url("alertmanager") + "api/v2/status")
    assert response.status_code == 200
    assert response.json()["cluster"]["status"] == "disabled"


def test_smoke_load_through_the_edge_stays_within_memory(lab):
    peak = {"pss": 0.0}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(5):
            current = status.collect(lab.settings)["memory_pss_mib"]
            peak["pss"] = max(peak["pss"], current)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        run = subprocess.run(
            [
                "make",
                "--no-print-directory",
                "loadtest",
                "PROFILE=smoke",
                f"TARGET={lab.url('edge_https').rstrip('/')}",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        done.set()
        sampler.join()
    # make loadtest exits 2 for any failure of the run itself (make's own code for 1)
    code = 0 if run.returncode == 0 else 1
    assert_ran_and_behaved(code, run.stdout + run.stderr)
    assert 0 < peak["pss"] < status.MEMORY_BUDGET_MIB


def test_stopping_an_app_server_its_target_goes_down_and_the_edge_keeps_serving(lab):
    zone_a = next(h for h in lab.hosts_in("app") if h.zone == TOPO.zones[0])
    instance = f"{zone_a.name}:{TOPO.port('app')}"
    assert wait_for(lambda: target_health(lab, "shop", instance) == "up", f"{instance} up")
    load = SteadyLoad(
        lab.url("edge_https"), lab.tls(), ["api/products?page_size=1"], customers=1, pause_s=0.2
    )
    with load:
        podman.run(["stop", "--time", "10", lab.container(zone_a.name)])
        try:
            wait_for(
                lambda: target_health(lab, "shop", instance) == "down",
                f"{instance} down in Prometheus",
            )
            down_at = time.monotonic()
            wait_for(lambda: len(load.since(down_at)) > 10, "requests served from the other zone")
        finally:
            podman.run(["start", lab.container(zone_a.name)])
    assert load.failed() == []
    wait_for(lambda: target_health(lab, "shop", instance) == "up", f"{instance} back up")


def test_fault_knobs_are_turned_on_the_partners_host_and_show_in_prometheus(lab):
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LAB_NAME": lab.settings.name,
        "LAB_SUBNET_SHIFT": str(lab.settings.subnet_shift),
    }

    def knobs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(REPO / ".venv/bin/python"), "-m", "lab", "fault", *args],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    turned = knobs("set", "swiftpost", "latency_ms=250")
    try:
        assert turned.returncode == 0, turned.stderr
        assert json.loads(turned.stdout)["latency_ms"] == 250

        query = 'sandbox_fault_setting{service="swiftpost",knob="latency_ms"}'

        def setting() -> float | None:
            answer = lab.prometheus_query(query)
            return float(answer[0]["value"][1]) if answer else None

        wait_for(lambda: setting() == 250, "Prometheus to scrape the turned knob")
        refused = knobs("set", "swiftpost", "error_rate=500")
        assert refused.returncode == 1 and "error_rate" in refused.stderr
    finally:
        assert knobs("reset").returncode == 0
    wait_for(lambda: setting() == 0, "the knob back at 0 in Prometheus")


def test_app_servers_log_to_a_volume_of_their_own_that_prometheus_watches(lab):
    """The disk-fill drill fills an app server's /var/log: it must be a filesystem of its
    own (lab/disks.py), never the overlay on this machine's disk, and watched by the
    HostDisk* alerts' series."""
    from lab import disks

    app_hosts = [h.name for h in lab.hosts_in("app")]
    for name in app_hosts:
        h = lab.testinfra_host(name)
        assert h.run("mountpoint -q /var/log").rc == 0, name
        fstype, size = h.check_output("df --output=fstype,size -B1M /var/log | tail -n 1").split()
        assert fstype == "ext4", (name, fstype)
        assert 0.8 * disks.LOG_VOLUME_MIB < int(size) <= disks.LOG_VOLUME_MIB, (name, size)
        assert h.file("/var/log/apt").is_directory, "seeded with the base image's /var/log"
    assert lab.testinfra_host("db").run("mountpoint -q /var/log").rc != 0, "app servers only"

    query = 'node_filesystem_size_bytes{mountpoint="/var/log",fstype="ext4"}'

    def watched() -> set[str]:
        return {s["metric"]["instance"].split(":")[0] for s in lab.prometheus_query(query)}

    wait_for(lambda: watched() == set(app_hosts), "Prometheus to hold every log volume")

    # podman's bind mounts of this machine's /etc/hosts and friends are not the hosts'
    # disks: on a machine with under 25 % free they would page HostDiskWillFillIn4Hours
    answer = lab.prometheus_query('node_filesystem_size_bytes{mountpoint=~"/etc/.+"}')
    assert answer == [], [series["metric"] for series in answer]
