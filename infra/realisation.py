"""How the one topology (topology/topology.yml) is realised in AWS.

The topology names tiers, ports and flows for every layer. In AWS some tiers
are not hosts of ours: `public` is the internet as a source (customers), and
`partners` is the internet as a destination (payment, courier and mail
providers reached through NAT). Some tiers are held by managed services that
serve only their own protocols: the ALB in the DMZ listens on http/https, RDS
and ElastiCache in the data tier serve postgres/redis and run no SSH or node
exporter. This module is the one place that says so; the firewall rules and
the reachability test both start from `realised_flows`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from topology import Topology

INTERNET_CIDR = "0.0.0.0/0"

# The tier whose hosts are customers on the internet (a traffic source only).
INTERNET_SOURCE_TIER = "public"
# The tier that stands for SaaS providers on the internet (a destination only).
INTERNET_DESTINATION_TIER = "partners"

# Tiers that get subnets of their own in every zone, outermost first, and how
# their subnets route to the internet.
SUBNET_TIERS: tuple[str, ...] = ("dmz", "app", "data", "mgmt")
PUBLIC_SUBNET_TIER = "dmz"  # routes to the internet gateway; holds the ALB and NAT gateways
NAT_ROUTED_TIERS = frozenset({"app"})  # default route through NAT (partner egress)
# data and mgmt have no default route at all: data is isolated, mgmt reaches
# AWS APIs through VPC interface endpoints only.

# Tiers held by managed services, and the named ports those services serve.
# Flows to any other port of such a tier have no listener in AWS.
MANAGED_TIER_PORTS: dict[str, frozenset[str]] = {
    "dmz": frozenset({"http", "https"}),  # Application Load Balancer listeners
    "data": frozenset({"postgres", "redis"}),  # RDS PostgreSQL, ElastiCache Redis
}

# Partner ports of the lab's sandboxes -> the named port the real providers
# serve on the internet. Payment and courier APIs are HTTPS; mail submission
# keeps the smtp port (2525 is offered by the common transactional mail
# providers and is not throttled by EC2 like port 25).
PARTNER_PORTS_IN_AWS: dict[str, str] = {
    "payments": "https",
    "couriers": "https",
    "smtp": "smtp",
}

# A pseudo-tier for the VPC interface endpoints of AWS APIs (SSM Session
# Manager, EC2 discovery for Prometheus, SNS for Alertmanager). They live in
# the mgmt subnets and carry the management path that replaces SSH from outside.
AWS_API_TIER = "aws_api"
AWS_API_SUBNET_TIER = "mgmt"
AWS_API_ENDPOINT_SERVICES: tuple[str, ...] = ("ssm", "ssmmessages", "ec2messages", "ec2", "sns")

# Return traffic of stateless network ACLs: the ephemeral source ports that
# NAT gateways, load balancers and Linux clients use.
EPHEMERAL_PORTS = (1024, 65535)


@dataclass(frozen=True)
class RealisedFlow:
    """One allowed (source tier, destination tier, port) in AWS."""

    source: str
    destination: str
    port_name: str
    port: int
    why: str


@dataclass(frozen=True)
class UnrealisedFlow:
    """A topology flow (one port of it) that has no counterpart in AWS, and why."""

    source: str
    destination: str
    port_name: str
    reason: str


def check_covers(topo: Topology) -> None:
    """Fail with a clear message when the topology has a tier this mapping does not place."""
    placed = {INTERNET_SOURCE_TIER, INTERNET_DESTINATION_TIER, *SUBNET_TIERS}
    unplaced = sorted(set(topo.tiers) - placed)
    if unplaced:
        raise ValueError(
            f"topology tiers {unplaced} have no place in AWS: add them to infra/realisation.py"
        )
    unknown = sorted(placed - set(topo.tiers))
    if unknown:
        raise ValueError(f"infra/realisation.py places tiers the topology lacks: {unknown}")
    for port_name in [*PARTNER_PORTS_IN_AWS, *PARTNER_PORTS_IN_AWS.values()]:
        if port_name not in topo.ports:
            raise ValueError(f"infra/realisation.py: unknown topology port {port_name!r}")


def _aws_port_name(destination: str, port_name: str) -> str | None:
    if destination == INTERNET_DESTINATION_TIER:
        return PARTNER_PORTS_IN_AWS.get(port_name)
    if destination in MANAGED_TIER_PORTS:
        return port_name if port_name in MANAGED_TIER_PORTS[destination] else None
    return port_name


def _unrealised_reason(source: str, destination: str) -> str:
    if destination == INTERNET_DESTINATION_TIER:
        return "no partner hosts in AWS: providers are SaaS on the internet"
    if destination in MANAGED_TIER_PORTS:
        return f"{destination} is a managed service in AWS with no listener on this port"
    if source == INTERNET_DESTINATION_TIER:
        return "partners are on the internet and open no connections into the VPC"
    return "not mapped"


def split_flows(topo: Topology) -> tuple[list[RealisedFlow], list[UnrealisedFlow]]:
    """Topology flows as AWS realises them, and the ports that have no AWS counterpart."""
    check_covers(topo)
    realised: dict[tuple[str, str, int], RealisedFlow] = {}
    unrealised: list[UnrealisedFlow] = []
    for flow in topo.flows:
        for port_name in flow.ports:
            aws_name = _aws_port_name(flow.destination, port_name)
            if aws_name is None or flow.source == INTERNET_DESTINATION_TIER:
                unrealised.append(
                    UnrealisedFlow(
                        flow.source,
                        flow.destination,
                        port_name,
                        _unrealised_reason(flow.source, flow.destination),
                    )
                )
                continue
            port = topo.port(aws_name)
            key = (flow.source, flow.destination, port)
            realised.setdefault(
                key, RealisedFlow(flow.source, flow.destination, aws_name, port, flow.why)
            )
    return list(realised.values()), unrealised


def platform_flows(topo: Topology) -> list[RealisedFlow]:
    """AWS-only flows: the management path over SSM and the AWS APIs monitoring uses."""
    return [
        RealisedFlow(
            "mgmt",
            AWS_API_TIER,
            "https",
            topo.port("https"),
            "SSM Session Manager, EC2 service discovery, SNS alert delivery",
        )
    ]


def realised_flows(topo: Topology) -> list[RealisedFlow]:
    """Every flow the AWS firewalls open: realised topology flows plus platform flows."""
    realised, _ = split_flows(topo)
    return realised + platform_flows(topo)


def implied_flows(flows: list[RealisedFlow]) -> list[RealisedFlow]:
    """Flows no rule names but the internet implies, so they are open too.

    A tier that may reach the internet on a port reaches whatever the internet
    reaches on that port: the app tier, with HTTPS egress for its partners,
    can open the public load balancer's HTTPS listener like any customer.
    """
    internet_facing = {(f.destination, f.port) for f in flows if f.source == INTERNET_SOURCE_TIER}
    return [
        RealisedFlow(
            out.source,
            destination,
            out.port_name,
            out.port,
            f"{destination} is open to the internet on {out.port_name}; {out.source} may reach it",
        )
        for out in flows
        if out.destination == INTERNET_DESTINATION_TIER
        for destination, port in sorted(internet_facing)
        if port == out.port and destination != out.source
    ]


@dataclass(frozen=True)
class AddressPlan:
    """The VPC's address plan: one block per subnet tier, one subnet per zone in it.

    The VPC block is cut into four tier blocks and each tier block into four
    zone subnets, so a firewall rule names a whole tier with one CIDR.
    """

    vpc_cidr: str

    def _tier_networks(self) -> list[ipaddress.IPv4Network]:
        vpc = ipaddress.IPv4Network(self.vpc_cidr)
        return list(vpc.subnets(prefixlen_diff=2))

    def tier_cidr(self, tier: str) -> str:
        if tier == AWS_API_TIER:
            tier = AWS_API_SUBNET_TIER
        return str(self._tier_networks()[SUBNET_TIERS.index(tier)])

    def subnet_cidr(self, tier: str, zone_index: int) -> str:
        block = ipaddress.IPv4Network(self.tier_cidr(tier))
        return str(list(block.subnets(prefixlen_diff=2))[zone_index])

    def cidr_of(self, tier: str) -> str:
        """The CIDR a firewall rule uses for a tier (the internet for public/partners)."""
        if tier in (INTERNET_SOURCE_TIER, INTERNET_DESTINATION_TIER):
            return INTERNET_CIDR
        return self.tier_cidr(tier)
