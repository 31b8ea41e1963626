"""What the lab looks like right now: hosts, networks, addresses, health, alerts, memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

import topology

from . import monitoring_access, podman
from .hosts import LAB_LABEL, loopback_ports
from .layout import plan
from .settings import LabSettings

MIB = 1024 * 1024
# The whole lab, under load, stays below this (proportional resident memory).
MEMORY_BUDGET_MIB = 2048


def host_memory_bytes(container: str) -> dict[str, int]:
    """Resident memory of every process in the host, read from this machine's /proc.

    rss sums each process's resident set (shared pages, such as PostgreSQL's
    shared buffers, count once per process that maps them); pss splits every
    shared page between the processes that share it, so pss sums to what the
    host really occupies.
    """
    result = podman.run(["top", container, "hpid"], check=False, timeout=30)
    totals = {"rss": 0, "pss": 0}
    for pid in result.stdout.split()[1:]:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text(encoding="ascii")
        except OSError:  # the process ended meanwhile
            continue
        for line in rollup.splitlines():
            key, _, value = line.partition(":")
            if key in ("Rss", "Pss"):
                totals[key.lower()] += int(value.split()[0]) * 1024
    return totals


def _health(container: str) -> dict[str, Any]:
    state = podman.exec_in(container, ["systemctl", "is-system-running"], check=False, timeout=30)
    failed = podman.exec_in(
        container,
        ["systemctl", "list-units", "--state=failed", "--plain", "--no-legend", "--no-pager"],
        check=False,
        timeout=30,
    )
    return {
        "systemd": state.stdout.strip() or "unknown",
        "failed_units": [line.split()[0] for line in failed.stdout.splitlines() if line.strip()],
    }


def urls(settings: LabSettings) -> dict[str, str]:
    topo = topology.load()
    found: dict[str, str] = {}
    for key, pub in topo.lab.published.items():
        container = settings.container(pub.host)
        if not podman.exists("container", container):
            continue
        port = loopback_ports(settings, pub.host).get(topo.port(pub.port))
        if port is None:
            continue
        found[key] = f"{pub.scheme}://127.0.0.1:{port}/"
    return found


def firing_alerts(
    alertmanager_url: str | None, access: monitoring_access.MonitoringAccess
) -> list[dict[str, Any]] | None:
    """Active, unsilenced alerts; None when Alertmanager cannot be asked.

    Alertmanager serves HTTPS with the lab's CA and asks for the operator's basic auth.
    """
    if alertmanager_url is None:
        return None
    try:
        with access.session() as session:
            response = session.get(
                alertmanager_url + "api/v2/alerts",
                params={"active": "true", "silenced": "false", "inhibited": "false"},
                timeout=5,
            )
            response.raise_for_status()
            alerts = response.json()
    except (requests.RequestException, monitoring_access.MonitoringAccessError, ValueError):
        return None
    return [
        {
            "alertname": a["labels"].get("alertname"),
            "severity": a["labels"].get("severity"),
            "instance": a["labels"].get("instance"),
            "since": a.get("startsAt"),
        }
        for a in alerts
    ]


def collect(settings: LabSettings) -> dict[str, Any]:
    hosts_plan = plan(settings)
    label = f"{LAB_LABEL}={settings.name}"
    running = {c["Names"][0]: c for c in podman.containers_with_label(label)}
    hosts: list[dict[str, Any]] = []
    total_rss = 0
    total_pss = 0
    for name, host in hosts_plan.items():
        container = settings.container(name)
        info: dict[str, Any] = {
            "name": name,
            "container": container,
            "tier": host.tier,
            "zone": host.zone,
            "addresses": host.addresses,
            "state": running.get(container, {}).get("State", "absent"),
        }
        if info["state"] == "running":
            info.update(_health(container))
            memory = host_memory_bytes(container)
            info["rss_mib"] = round(memory["rss"] / MIB, 1)
            info["pss_mib"] = round(memory["pss"] / MIB, 1)
            total_rss += memory["rss"]
            total_pss += memory["pss"]
        hosts.append(info)
    networks = [
        {"name": settings.network(tier), "tier": tier, "subnet": str(settings.subnet(tier))}
        for tier in topology.load().tiers
        if podman.exists("network", settings.network(tier))
    ]
    lab_urls = urls(settings)
    return {
        "lab": settings.name,
        "hosts": hosts,
        "networks": networks,
        "urls": lab_urls,
        "alerts_firing": firing_alerts(
            lab_urls.get("alertmanager"), monitoring_access.for_lab(settings)
        ),
        "memory_rss_mib": round(total_rss / MIB, 1),
        "memory_pss_mib": round(total_pss / MIB, 1),
        "memory_budget_mib": MEMORY_BUDGET_MIB,
    }


def render_text(status: dict[str, Any]) -> str:
    lines = [f"lab {status['lab']}"]
    lines.append("hosts:")
    for host in status["hosts"]:
        addresses = " ".join(f"{tier}={ip}" for tier, ip in host["addresses"].items())
        health = host.get("systemd", "-")
        failed = ",".join(host.get("failed_units", [])) or "-"
        rss = f"{host['pss_mib']:.0f}/{host['rss_mib']:.0f} MiB" if "rss_mib" in host else "-"
        zone = host["zone"] or "-"
        lines.append(
            f"  {host['name']:<9} {host['state']:<8} tier={host['tier']:<8} zone={zone:<2} "
            f"systemd={health:<9} failed={failed:<8} pss/rss={rss:>12}  {addresses}"
        )
    lines.append("networks:")
    for net in status["networks"]:
        lines.append(f"  {net['name']:<22} {net['subnet']}")
    lines.append("urls:")
    for key, url in status["urls"].items():
        lines.append(f"  {key:<14} {url}")
    alerts = status["alerts_firing"]
    if alerts is None:
        lines.append("alerts firing: (alertmanager not reachable)")
    else:
        lines.append(f"alerts firing: {len(alerts)}")
        for alert in alerts:
            lines.append(
                f"  {alert['alertname']} severity={alert['severity']} instance={alert['instance']}"
            )
    lines.append(
        f"memory, all hosts: {status['memory_pss_mib']:.0f} MiB resident (PSS; budget "
        f"{status['memory_budget_mib']} MiB), {status['memory_rss_mib']:.0f} MiB summed RSS"
    )
    return "\n".join(lines)
