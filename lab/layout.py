"""The lab's network plan, derived from the topology: who joins which network, at which address.

One podman network per tier. Every allowed flow runs on the network of the tier
it enters, so a host joins its own tier's network plus the network of every
tier it may open connections to (app servers join data and partners; mon joins
every tier it watches). Traffic from the internet is the exception: it enters
the DMZ on the public network, so the DMZ's hosts join the public network, as
a real load balancer faces the internet. With that rule two hosts share a
network only where some flow exists between their tiers, so the network layer
already denies every other pair; each host's nftables then narrows the shared
networks to the allowed direction and ports.

Each host has one number and takes it as the last octet on every network it
joins (edge is .11 wherever it is), so addresses are stable and readable.
"""

from __future__ import annotations

from dataclasses import dataclass

import topology
from topology import Topology

from .settings import LabSettings

FIRST_HOST_NUMBER = 10


@dataclass(frozen=True)
class HostPlan:
    name: str
    tier: str
    zone: str | None
    number: int
    # tier name -> this host's address on that tier's network; own tier first
    addresses: dict[str, str]
    # published name -> container port, for the services this host publishes on loopback
    published: dict[str, int]

    @property
    def service_address(self) -> str:
        """Where the host's own services listen: its address on its own tier's network."""
        return self.addresses[self.tier]

    @property
    def networks(self) -> list[str]:
        return list(self.addresses)


def _is_internet(topo: Topology, tier: str) -> bool:
    return topo.tiers[tier].aws == "internet"


def network_tiers(topo: Topology) -> dict[str, list[str]]:
    """Host name -> the tiers whose networks it joins (its own tier first)."""
    joined: dict[str, list[str]] = {}
    for name, host in topo.lab.hosts.items():
        tiers = [host.tier]
        for flow in topo.flows:
            if _is_internet(topo, flow.source):
                carrier = flow.source if flow.destination == host.tier else None
            else:
                carrier = flow.destination if flow.source == host.tier else None
            if carrier is not None and carrier not in tiers:
                tiers.append(carrier)
        joined[name] = tiers
    return joined


def plan(settings: LabSettings, topo: Topology | None = None) -> dict[str, HostPlan]:
    topo = topo or topology.load()
    joined = network_tiers(topo)
    hosts: dict[str, HostPlan] = {}
    for index, (name, host) in enumerate(topo.lab.hosts.items()):
        number = FIRST_HOST_NUMBER + index
        addresses = {
            tier: str(settings.subnet(tier).network_address + number) for tier in joined[name]
        }
        published = {
            key: topo.port(pub.port) for key, pub in topo.lab.published.items() if pub.host == name
        }
        hosts[name] = HostPlan(name, host.tier, host.zone, number, addresses, published)
    return hosts


def shared_tiers(a: HostPlan, b: HostPlan) -> list[str]:
    return [tier for tier in a.networks if tier in b.addresses]


def peer_addresses(viewer: HostPlan, hosts: dict[str, HostPlan]) -> dict[str, str]:
    """Name -> address for every host the viewer shares a network with.

    The lab's split-horizon name service: the viewer sees a peer at the peer's
    address on their common network, preferring the peer's own tier network.
    """
    peers: dict[str, str] = {}
    for name, peer in hosts.items():
        if name == viewer.name:
            continue
        shared = shared_tiers(peer, viewer)
        if shared:
            peers[name] = peer.addresses[shared[0]]
    return peers


def gateways(settings: LabSettings, topo: Topology | None = None) -> dict[str, str]:
    """Tier -> the gateway address of its lab network (this machine, the lab's operator)."""
    topo = topo or topology.load()
    return {tier: str(settings.subnet(tier).network_address + 1) for tier in topo.tiers}
