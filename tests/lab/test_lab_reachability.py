"""Reachability in the live lab compared with the topology's flow table.

From every host, every named port of every other host is probed on every one
of that host's addresses. Where the topology allows the source tier to open
the port on the destination tier, the connection must open on the address the
source reaches the destination at (its name in the source's /etc/hosts); on
the destination's other addresses on a shared network the firewall admits it
too, and the answer is open or refused by whatever listens there. Everything
else must go unanswered (dropped by a firewall, or by the isolated networks),
never refused: a refusal would mean a packet got past the host's firewall. Then two dual-homed
hosts are asked to route for a neighbour: their nftables forward chain drops it.
"""

from __future__ import annotations

import pytest

import topology
from lab import podman
from lab.layout import peer_addresses
from lab.probe import tcp_probe

pytestmark = pytest.mark.lab

TOPO = topology.load()
ALL_PORTS = sorted(set(TOPO.ports.values()))


def test_flows_open_and_everything_else_closed(lab):
    mismatches = []
    for source in lab.hosts.values():
        peers = peer_addresses(source, lab.hosts)
        targets = {
            (address, port): (destination, tier)
            for destination in lab.hosts.values()
            if destination.name != source.name
            for tier, address in destination.addresses.items()
            for port in ALL_PORTS
        }
        outcomes = tcp_probe(lab.container(source.name), targets)
        for (address, port), (destination, tier) in targets.items():
            allowed = port in TOPO.allowed_ports(source.tier, destination.tier)
            if not allowed or tier not in source.addresses:
                expected = {"filtered"}
            elif address == peers[destination.name]:
                expected = {"open"}
            else:
                expected = {"open", "refused"}
            got = outcomes[(address, port)]
            if got not in expected:
                mismatches.append(
                    f"{source.name} -> {destination.name} {address}:{port}: "
                    f"{got}, expected {sorted(expected)}"
                )
    assert mismatches == []


def test_every_allowed_flow_was_exercised(lab):
    """Each flow of the table has hosts on both ends in the lab, so the probe above covered it."""
    tiers_with_hosts = {host.tier for host in lab.hosts.values()}
    for flow in TOPO.flows:
        assert {flow.source, flow.destination} <= tiers_with_hosts, flow


def _forward_drops(container: str) -> int:
    out = podman.exec_in(
        container, ["nft", "list", "counter", "inet", "filter", "forward_dropped"]
    ).stdout
    return int(out.split("packets")[1].split()[0])


@pytest.mark.parametrize(
    ("source_tier", "router_tier", "target_tier", "target_port"),
    [
        # the internet tries to reach an app server through the edge
        ("public", "dmz", "app", "app"),
        # the database host tries to reach the partners through the monitoring host
        ("data", "mgmt", "partners", "payments"),
    ],
)
def test_dual_homed_hosts_do_not_forward(lab, source_tier, router_tier, target_tier, target_port):
    source = lab.hosts_in(source_tier)[0]
    router = lab.hosts_in(router_tier)[0]
    target = lab.hosts_in(target_tier)[0]
    via = router.addresses[source.tier]
    subnet = str(lab.settings.subnet(target.tier))
    destination = target.addresses[target.tier]
    source_container = lab.container(source.name)
    # ip_forward is on inside these hosts: only nftables stands in the way
    assert (
        podman.exec_in(
            lab.container(router.name), ["sysctl", "-n", "net.ipv4.ip_forward"]
        ).stdout.strip()
        == "1"
    )
    before = _forward_drops(lab.container(router.name))
    podman.exec_in(source_container, ["ip", "route", "add", subnet, "via", via])
    try:
        outcome = tcp_probe(source_container, [(destination, TOPO.port(target_port))])
    finally:
        podman.exec_in(source_container, ["ip", "route", "del", subnet, "via", via])
    assert outcome[(destination, TOPO.port(target_port))] == "filtered"
    assert _forward_drops(lab.container(router.name)) > before
