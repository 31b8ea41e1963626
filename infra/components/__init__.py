"""The six rooms of the stack, each a ComponentResource with typed args."""

from __future__ import annotations

# Tag keys every resource carries; the Ansible aws_ec2 inventory groups hosts by
# TIER_TAG and ZONE_TAG and selects the stack by STACK_TAG.
PROJECT_TAG = "project"
STACK_TAG = "stack"
TIER_TAG = "tier"
ZONE_TAG = "zone"
ROLE_TAG = "role"


def tags(project: str, stack: str, tier: str, name: str, **extra: str) -> dict[str, str]:
    return {
        PROJECT_TAG: project,
        STACK_TAG: stack,
        TIER_TAG: tier,
        "Name": f"{project}-{stack}-{name}",
        **extra,
    }
