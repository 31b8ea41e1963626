"""The running lab as a drill sees it: Prometheus and Alertmanager over HTTPS with the
operator's password (requests), the lab's pager, and the operator's shell that runbook
commands run in, exactly as an on-call engineer's would."""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import requests

import topology
from lab import monitoring_access, pages, podman, status
from lab.layout import HostPlan, plan
from lab.settings import LabSettings, from_env

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 10


@cache
def settings() -> LabSettings:
    """The lab named by the environment (LAB_NAME, LAB_SUBNET_SHIFT), as `python -m lab`."""
    return from_env()


def hosts() -> dict[str, HostPlan]:
    return plan(settings())


def hosts_in(tier: str, zone: str | None = None) -> list[HostPlan]:
    return [h for h in hosts().values() if h.tier == tier and (zone is None or h.zone == zone)]


def psql(sql: str) -> list[list[str]]:
    """`sql` run in the shop's database on the data host, as the postgres superuser: its
    rows, each a list of columns."""
    (db,) = [h.name for h in hosts_in("data")]
    port = str(topology.load().port("postgres"))
    result = podman.exec_in(
        settings().container(db),
        ["sudo", "-u", "postgres", "psql", "-p", port, "-d", "shop", "-AtX", "-F", "\t", "-c", sql],
    )
    return [line.split("\t") for line in result.stdout.splitlines() if line]


def url(published: str) -> str:
    return status.urls(settings())[published]


def monitoring() -> requests.Session:
    return monitoring_access.for_lab(settings()).session()


def prometheus(path: str, **params: Any) -> Any:
    with monitoring() as session:
        answer = session.get(url("prometheus") + path, params=params, timeout=TIMEOUT_S)
    answer.raise_for_status()
    return answer.json()["data"]


def query(expr: str) -> list[dict[str, Any]]:
    return prometheus("api/v1/query", query=expr)["result"]


def prometheus_alerts() -> list[dict[str, Any]]:
    return prometheus("api/v1/alerts")["alerts"]


def alertmanager_alerts(alertname: str) -> list[dict[str, Any]]:
    with monitoring() as session:
        answer = session.get(
            url("alertmanager") + "api/v2/alerts",
            params={"filter": f'alertname="{alertname}"'},
            timeout=TIMEOUT_S,
        )
    answer.raise_for_status()
    return answer.json()


def open_link(link: str) -> int:
    """The status a runbook link answers the operator with."""
    with monitoring() as session:
        return session.get(link, timeout=TIMEOUT_S).status_code


def notifications(**filters: str) -> list[dict[str, Any]]:
    return pages.notifications(settings(), **filters)


def operator_shell(command: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """`command` in the operator's shell (`python -m lab shell -c`), from the repository."""
    return subprocess.run(  # noqa: S603 - the runbook's own command, in the operator's shell
        [sys.executable, "-m", "lab", "shell", "-c", f"set -eo pipefail\n{command}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
