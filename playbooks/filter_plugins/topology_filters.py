"""Jinja filters over the repository's one network definition (topology/topology.yml).

Roles ask these filters for ports, allowed flows and scrape targets instead of
restating numbers, so a change in topology.yml reaches every host on the next
converge.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

import topology  # the repository's package, installed into the venv (pip install -e .)


def _topology() -> topology.Topology:
    return topology.load()


def topology_port(name: str) -> int:
    """'postgres' | topology_port -> 5433"""
    ports = _topology().ports
    if name not in ports:
        raise AnsibleFilterError(
            f"topology_port: unknown port name {name!r} (known: {sorted(ports)})"
        )
    return ports[name]


def topology_inbound(tier: str, tier_sources: dict[str, list[str]]) -> list[dict[str, Any]]:
    """What a host of `tier` admits: one rule per allowed flow into the tier.

    Each rule: {from, sources (addresses or CIDRs the source tier connects from),
    ports (numbers), why}.
    """
    topo = _topology()
    if tier not in topo.tiers:
        raise AnsibleFilterError(f"topology_inbound: unknown tier {tier!r}")
    rules = []
    for flow in topo.flows:
        if flow.destination != tier:
            continue
        sources = tier_sources.get(flow.source, [])
        if not sources:
            continue
        rules.append(
            {
                "from": flow.source,
                "sources": list(sources),
                "ports": sorted(topo.ports[p] for p in flow.ports),
                "why": flow.why,
            }
        )
    return rules


def topology_openers(tier: str, port_name: str) -> list[str]:
    """Tiers that may open a port on a tier: 'data' | topology_openers('postgres') -> ['app']"""
    topo = _topology()
    port = topology_port(port_name)
    return sorted(s for (s, d), ports in topo.flow_matrix().items() if d == tier and port in ports)


def topology_scrape_tiers(job: str) -> list[str]:
    for scrape in _topology().scrape_jobs:
        if scrape.job == job:
            return list(scrape.tiers)
    raise AnsibleFilterError(f"topology_scrape_tiers: no scrape job {job!r}")


def topology_scrape_schemes(_: Any = None) -> dict[str, str]:
    """none | topology_scrape_schemes -> {job: "http" or "https"}"""
    return _topology().scrape_schemes()


def topology_scrape_targets(hosts_by_tier: dict[str, list[str]]) -> dict[str, list[str]]:
    """{tier: [host, ...]} | topology_scrape_targets -> {job: ['host:port', ...]}"""
    return _topology().scrape_targets(hosts_by_tier)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "topology_port": topology_port,
            "topology_inbound": topology_inbound,
            "topology_openers": topology_openers,
            "topology_scrape_tiers": topology_scrape_tiers,
            "topology_scrape_targets": topology_scrape_targets,
            "topology_scrape_schemes": topology_scrape_schemes,
        }
