"""The lab end to end: one lab per test session, built and converged twice.

By default the session builds its own lab beside any other ("shoplab-test":
subnets shifted by 100 /24 blocks, loopback ports picked by podman) and removes
it at the end (LAB_KEEP=1 keeps it). `make lab` runs the same suite with
LAB_REUSE=1 against the lab it has just built and converged (LAB_NAME,
default "shoplab"), and leaves it running.
"""

from __future__ import annotations

import os
import shutil
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import testinfra

import topology
from lab import converge, hosts, image, inventory, monitoring_access, status
from lab.converge import ConvergeResult, parse_recap
from lab.layout import HostPlan, plan
from lab.settings import LabSettings, from_env

TEST_LAB_NAME = "shoplab-test"
TEST_SUBNET_SHIFT = 100


@dataclass
class RunningLab:
    settings: LabSettings
    hosts: dict[str, HostPlan]
    first_converge: ConvergeResult | None
    second_converge: ConvergeResult
    reused: bool

    def container(self, host: str) -> str:
        return self.settings.container(host)

    def testinfra_host(self, host: str) -> testinfra.host.Host:
        return testinfra.get_host(f"podman://{self.container(host)}")

    def url(self, published: str) -> str:
        return status.urls(self.settings)[published]

    @property
    def ca_file(self) -> Path:
        return self.settings.ca_file

    def tls(self) -> ssl.SSLContext:
        """Verifies the edge's, Prometheus's and Alertmanager's certificates against the lab CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    @property
    def monitoring(self) -> monitoring_access.MonitoringAccess:
        return monitoring_access.for_lab(self.settings)

    def monitoring_client(self) -> httpx.Client:
        """Prometheus and Alertmanager as the operator reaches them: the lab CA, basic auth."""
        return httpx.Client(verify=self.tls(), auth=self.monitoring.auth(), timeout=10)

    def prometheus_query(self, query: str) -> list[dict]:
        """The series of an instant query to the lab's Prometheus, as the operator asks it."""
        with self.monitoring_client() as client:
            answer = client.get(self.url("prometheus") + "api/v1/query", params={"query": query})
        answer.raise_for_status()
        return answer.json()["data"]["result"]

    def hosts_in(self, tier: str) -> list[HostPlan]:
        return [h for h in self.hosts.values() if h.tier == tier]


def _reused_lab() -> RunningLab:
    settings = from_env()
    log = settings.state_dir / "logs" / "converge-again.log"
    if not log.exists():
        pytest.fail(
            f"LAB_REUSE=1 but {log} is missing: run `make lab` (or python -m lab up/converge)"
        )
    text = log.read_text(encoding="utf-8")
    second = ConvergeResult(0 if "failed=0" in text else 1, parse_recap(text), log)
    return RunningLab(settings, plan(settings), None, second, reused=True)


def _test_settings() -> LabSettings:
    return LabSettings(
        name=TEST_LAB_NAME,
        subnet_shift=TEST_SUBNET_SHIFT,
        loopback_ports=dict.fromkeys(topology.load().lab.published, 0),
    )


def _fresh_lab(settings: LabSettings) -> RunningLab:
    hosts.remove_all(settings)
    if settings.state_dir.exists():
        shutil.rmtree(settings.state_dir)
    tag, _ = image.ensure()
    hosts.ensure_networks(settings)
    planned = hosts.ensure_hosts(settings, tag)
    inventory.write(settings, planned)
    first = converge.run_playbook(settings, "converge")
    assert first.succeeded, f"first converge failed; see {first.log}"
    second = converge.run_playbook(settings, "converge-again")
    assert second.succeeded, f"second converge failed; see {second.log}"
    return RunningLab(settings, planned, first, second, reused=False)


@pytest.fixture(scope="session")
def lab() -> Iterator[RunningLab]:
    if shutil.which("podman") is None or os.geteuid() != 0:
        pytest.fail("the lab needs root and podman (make deps installs podman)")
    if os.environ.get("LAB_REUSE") == "1":
        yield _reused_lab()
        return
    os.environ.setdefault("LAB_QUIET", "1")
    settings = _test_settings()
    try:
        yield _fresh_lab(settings)
    finally:
        if os.environ.get("LAB_KEEP") != "1":
            hosts.remove_all(settings)
            shutil.rmtree(settings.state_dir, ignore_errors=True)
