"""What the playbooks consume: the Ansible dynamic inventory and the endpoints.

App servers come and go with the auto scaling group, so no static host list
can be right for long. The amazon.aws.aws_ec2 inventory plugin (bundled with
the `ansible` package) reads the running instances and groups them by the tags
this program sets, with the lab inventory's names: one group per tier
(`tier_app`, `tier_mgmt`) and one per zone (`zone_a`, ...). The stack exports
the plugin's config; write it to a file whose name ends in `aws_ec2.yml` and
point ansible-playbook at it.
"""

from __future__ import annotations

from typing import Any

from infra.components import PROJECT_TAG, ROLE_TAG, STACK_TAG, TIER_TAG, ZONE_TAG

# The topology zone letter of an instance: the last character of its AWS zone name.
ZONE_FROM_PLACEMENT = "placement.availability_zone[-1:]"


def aws_ec2_inventory(project: str, stack: str, region: str) -> dict[str, Any]:
    """The amazon.aws.aws_ec2 plugin config that finds this stack's hosts."""
    return {
        "plugin": "amazon.aws.aws_ec2",
        "regions": [region],
        "filters": {
            f"tag:{PROJECT_TAG}": project,
            f"tag:{STACK_TAG}": stack,
            "instance-state-name": "running",
        },
        # instance ids: what SSM Session Manager connects to
        "hostnames": ["instance-id"],
        # the same host variables and groups as the lab inventory, so one site.yml serves both
        "compose": {
            "ansible_host": "private_ip_address",
            "topology_tier": f"tags.{TIER_TAG}",
            "topology_zone": ZONE_FROM_PLACEMENT,
        },
        "keyed_groups": [
            # tier groups: tier_app, tier_mgmt
            {"key": f"tags.{TIER_TAG}", "prefix": "tier", "separator": "_"},
            # zone groups from the placement, so ASG instances need no zone tag: zone_a, ...
            {"key": ZONE_FROM_PLACEMENT, "prefix": "zone", "separator": "_"},
            # role groups: role_shop, role_monitoring
            {"key": f"tags.{ROLE_TAG}", "prefix": "role", "separator": "_"},
        ],
    }


def tag_scheme() -> dict[str, str]:
    """The tags the inventory groups on, and what they mean."""
    return {
        PROJECT_TAG: "the Pulumi project; selects this bundle's hosts",
        STACK_TAG: "the Pulumi stack (dev, staging, prod)",
        TIER_TAG: "the topology tier (topology/topology.yml): app, mgmt, ...",
        ZONE_TAG: "the topology zone letter on single hosts; ASG hosts use their placement",
        ROLE_TAG: "what the host runs: shop, monitoring",
    }
