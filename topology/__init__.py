"""The shop's network topology: tiers, zones, named ports and allowed flows.

`topology.yml` beside this module is the single source; this module loads and
validates it and answers the questions every consumer asks (which ports may
tier A open to tier B, which hosts does a scrape job cover).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

TOPOLOGY_FILE = Path(__file__).with_name("topology.yml")


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


TierList = Annotated[list[str], BeforeValidator(_as_list)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Tier(_Model):
    description: str
    aws: str
    lab_subnet: str


class Flow(_Model):
    source: str = Field(alias="from")
    destination: str = Field(alias="to")
    ports: list[str]
    why: str


class ScrapeJob(_Model):
    job: str
    tiers: TierList = Field(alias="tier")
    port: str
    path: str = "/metrics"
    scheme: Literal["http", "https"] = "http"


class LabHost(_Model):
    tier: str
    zone: str | None = None


class Published(_Model):
    host: str
    port: str
    loopback: int
    scheme: Literal["http", "https"] = "http"


class Lab(_Model):
    hosts: dict[str, LabHost]
    published: dict[str, Published]


class Topology(_Model):
    ports: dict[str, int]
    zones: list[str]
    tiers: dict[str, Tier]
    flows: list[Flow]
    scrape_jobs: list[ScrapeJob]
    lab: Lab

    @model_validator(mode="after")
    def _references_resolve(self) -> Topology:
        def need_tier(name: str, where: str) -> None:
            if name not in self.tiers:
                raise ValueError(f"{where}: unknown tier {name!r}")

        def need_port(name: str, where: str) -> None:
            if name not in self.ports:
                raise ValueError(f"{where}: unknown port name {name!r}")

        for flow in self.flows:
            where = f"flow {flow.source}->{flow.destination}"
            need_tier(flow.source, where)
            need_tier(flow.destination, where)
            for port in flow.ports:
                need_port(port, where)
        for job in self.scrape_jobs:
            for tier in job.tiers:
                need_tier(tier, f"scrape job {job.job}")
            need_port(job.port, f"scrape job {job.job}")
            if not any(
                f.source == "mgmt" and f.destination == t and job.port in f.ports
                for t in job.tiers
                if t != "mgmt"
                for f in self.flows
            ) and job.tiers != ["mgmt"]:
                raise ValueError(f"scrape job {job.job}: no mgmt flow allows port {job.port}")
        for name, host in self.lab.hosts.items():
            need_tier(host.tier, f"lab host {name}")
            if host.zone is not None and host.zone not in self.zones:
                raise ValueError(f"lab host {name}: unknown zone {host.zone!r}")
        for name, pub in self.lab.published.items():
            if pub.host not in self.lab.hosts:
                raise ValueError(f"published {name}: unknown lab host {pub.host!r}")
            need_port(pub.port, f"published {name}")
        return self

    def port(self, name: str) -> int:
        return self.ports[name]

    def allowed_ports(self, source: str, destination: str) -> set[int]:
        """Ports that `source` tier may open on `destination` tier."""
        return {
            self.ports[p]
            for f in self.flows
            if f.source == source and f.destination == destination
            for p in f.ports
        }

    def flow_matrix(self) -> dict[tuple[str, str], set[int]]:
        """Every ordered pair of distinct tiers with the ports allowed between them."""
        return {(s, d): self.allowed_ports(s, d) for s in self.tiers for d in self.tiers if s != d}

    def inbound(self, tier: str) -> dict[str, set[int]]:
        """For one tier: source tier -> ports it may open here (what a host firewall admits)."""
        return {s: ports for (s, d), ports in self.flow_matrix().items() if d == tier and ports}

    def scrape_schemes(self) -> dict[str, str]:
        """Job name -> "http" or "https"."""
        return {job.job: job.scheme for job in self.scrape_jobs}

    def scrape_targets(self, hosts_by_tier: dict[str, list[str]]) -> dict[str, list[str]]:
        """Job name -> ["host:port", ...] for the given inventory (tier -> host names)."""
        return {
            job.job: [
                f"{host}:{self.ports[job.port]}"
                for tier in job.tiers
                for host in sorted(hosts_by_tier.get(tier, []))
            ]
            for job in self.scrape_jobs
        }

    def lab_hosts_by_tier(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {t: [] for t in self.tiers}
        for name, host in self.lab.hosts.items():
            grouped[host.tier].append(name)
        return grouped


@cache
def load(path: Path = TOPOLOGY_FILE) -> Topology:
    with path.open(encoding="utf-8") as fh:
        return Topology.model_validate(yaml.safe_load(fh))
