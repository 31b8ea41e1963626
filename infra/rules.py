"""Security group and network ACL rules, derived from the realised flows.

Security groups are stateful and chained by reference: the destination's
group admits the source's group, the source's group lets the traffic out to
the destination's group. Only the internet ends of a flow use a CIDR.

Network ACLs are stateless, so each flow also opens the return path on the
ephemeral ports. Traffic from a NAT-routed tier to the internet crosses the
public subnets (where the NAT gateways are), so their ACL carries it too.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.realisation import (
    AWS_API_SUBNET_TIER,
    AWS_API_TIER,
    EPHEMERAL_PORTS,
    INTERNET_CIDR,
    INTERNET_DESTINATION_TIER,
    INTERNET_SOURCE_TIER,
    PUBLIC_SUBNET_TIER,
    AddressPlan,
    RealisedFlow,
)

# The AWS rule limit per direction of a network ACL (default quota).
NACL_RULES_PER_DIRECTION = 20


@dataclass(frozen=True)
class SecurityGroupRule:
    """One rule of one tier's security group; the peer is another group or a CIDR."""

    group_tier: str
    direction: str  # "ingress" | "egress"
    port: int
    peer_tier: str | None
    peer_cidr: str | None
    why: str


@dataclass(frozen=True)
class NetworkAclRule:
    """One rule of one tier's network ACL (TCP, allow)."""

    acl_tier: str
    egress: bool
    cidr: str
    from_port: int
    to_port: int


def security_group_rules(flows: list[RealisedFlow]) -> list[SecurityGroupRule]:
    rules: list[SecurityGroupRule] = []
    for flow in flows:
        if flow.source == INTERNET_SOURCE_TIER:
            rules.append(
                SecurityGroupRule(
                    flow.destination, "ingress", flow.port, None, INTERNET_CIDR, flow.why
                )
            )
        elif flow.destination == INTERNET_DESTINATION_TIER:
            rules.append(
                SecurityGroupRule(flow.source, "egress", flow.port, None, INTERNET_CIDR, flow.why)
            )
        else:
            rules.append(
                SecurityGroupRule(
                    flow.destination, "ingress", flow.port, flow.source, None, flow.why
                )
            )
            rules.append(
                SecurityGroupRule(
                    flow.source, "egress", flow.port, flow.destination, None, flow.why
                )
            )
    return list(dict.fromkeys(rules))


def _subnet_tier(tier: str) -> str | None:
    """The subnet tier whose ACL guards `tier`, or None for the internet."""
    if tier in (INTERNET_SOURCE_TIER, INTERNET_DESTINATION_TIER):
        return None
    return AWS_API_SUBNET_TIER if tier == AWS_API_TIER else tier


def network_acl_rules(
    flows: list[RealisedFlow], plan: AddressPlan, nat_routed_tiers: frozenset[str]
) -> list[NetworkAclRule]:
    low, high = EPHEMERAL_PORTS
    rules: list[NetworkAclRule] = []

    def allow(acl: str | None, egress: bool, cidr: str, ports: tuple[int, int]) -> None:
        if acl is not None:
            rules.append(NetworkAclRule(acl, egress, cidr, ports[0], ports[1]))

    for flow in flows:
        src_acl = _subnet_tier(flow.source)
        dst_acl = _subnet_tier(flow.destination)
        src_cidr = plan.cidr_of(flow.source)
        dst_cidr = plan.cidr_of(flow.destination)
        service = (flow.port, flow.port)
        # source side: the request out, the reply back in
        allow(src_acl, True, dst_cidr, service)
        allow(src_acl, False, dst_cidr, (low, high))
        # destination side: the request in, the reply back out
        allow(dst_acl, False, src_cidr, service)
        allow(dst_acl, True, src_cidr, (low, high))
        if flow.destination == INTERNET_DESTINATION_TIER and flow.source in nat_routed_tiers:
            # through the NAT gateway in the public subnets, both ways
            allow(PUBLIC_SUBNET_TIER, False, src_cidr, service)
            allow(PUBLIC_SUBNET_TIER, True, INTERNET_CIDR, service)
            allow(PUBLIC_SUBNET_TIER, False, INTERNET_CIDR, (low, high))
            allow(PUBLIC_SUBNET_TIER, True, src_cidr, (low, high))
    return list(dict.fromkeys(rules))


def rules_of_acl(rules: list[NetworkAclRule], tier: str, egress: bool) -> list[NetworkAclRule]:
    return [r for r in rules if r.acl_tier == tier and r.egress == egress]
