"""Firewall: the two layers, generated from the realised topology flows.

Inner layer: one security group per tier (plus one for the AWS API
endpoints), chained by reference - ALB -> app -> data - with no rule that is
not a flow. Outer layer: one network ACL per subnet tier, stateless, so each
flow opens its return path on the ephemeral ports too.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components import tags
from infra.realisation import AWS_API_TIER, SUBNET_TIERS, AddressPlan, RealisedFlow
from infra.rules import (
    NACL_RULES_PER_DIRECTION,
    network_acl_rules,
    rules_of_acl,
    security_group_rules,
)

TCP = "tcp"


@dataclass(frozen=True)
class FirewallArgs:
    project: str
    stack: str
    vpc_id: pulumi.Input[str]
    plan: AddressPlan
    flows: list[RealisedFlow]
    nat_routed_tiers: frozenset[str]
    # tier -> zone letter -> subnet id
    subnet_ids: dict[str, dict[str, pulumi.Output[str]]]


class Firewall(pulumi.ComponentResource):
    # tier (and AWS_API_TIER) -> security group id
    security_group_ids: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: FirewallArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("shop:infra:Firewall", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        groups: dict[str, aws.ec2.SecurityGroup] = {}
        for tier in (*SUBNET_TIERS, AWS_API_TIER):
            # No inline rules: the provider then also removes AWS's default allow-all egress.
            groups[tier] = aws.ec2.SecurityGroup(
                f"{name}-{tier}-sg",
                vpc_id=args.vpc_id,
                description=f"{tier} tier: only the topology's flows",
                tags=tags(args.project, args.stack, tier, f"{tier}-sg"),
                opts=child,
            )
        self.security_group_ids = {tier: group.id for tier, group in groups.items()}

        for rule in security_group_rules(args.flows):
            peer = f"{rule.peer_tier or 'internet'}"
            label = f"{name}-{rule.group_tier}-{rule.direction}-{peer}-{rule.port}"
            common = {
                "security_group_id": groups[rule.group_tier].id,
                "ip_protocol": TCP,
                "from_port": rule.port,
                "to_port": rule.port,
                "description": rule.why,
                "cidr_ipv4": rule.peer_cidr,
                "referenced_security_group_id": (
                    groups[rule.peer_tier].id if rule.peer_tier is not None else None
                ),
            }
            if rule.direction == "ingress":
                aws.vpc.SecurityGroupIngressRule(label, **common, opts=child)
            else:
                aws.vpc.SecurityGroupEgressRule(label, **common, opts=child)

        acl_rules = network_acl_rules(args.flows, args.plan, args.nat_routed_tiers)
        for tier in SUBNET_TIERS:
            acl = aws.ec2.NetworkAcl(
                f"{name}-{tier}-nacl",
                vpc_id=args.vpc_id,
                subnet_ids=list(args.subnet_ids[tier].values()),
                tags=tags(args.project, args.stack, tier, f"{tier}-nacl"),
                opts=child,
            )
            for egress in (False, True):
                direction = "out" if egress else "in"
                rules = rules_of_acl(acl_rules, tier, egress)
                if len(rules) > NACL_RULES_PER_DIRECTION:
                    raise ValueError(
                        f"network ACL of tier {tier} needs {len(rules)} {direction}bound rules,"
                        f" more than the AWS quota of {NACL_RULES_PER_DIRECTION}"
                    )
                for number, rule in enumerate(rules, start=1):
                    aws.ec2.NetworkAclRule(
                        f"{name}-{tier}-nacl-{direction}-{number * 10}",
                        network_acl_id=acl.id,
                        rule_number=number * 10,
                        egress=egress,
                        protocol=TCP,
                        rule_action="allow",
                        cidr_block=rule.cidr,
                        from_port=rule.from_port,
                        to_port=rule.to_port,
                        opts=child,
                    )

        self.register_outputs({"security_group_ids": self.security_group_ids})
