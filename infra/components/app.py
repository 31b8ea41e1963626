"""App tier: shop servers in an auto scaling group spread over the zones.

The launch template requires IMDSv2, encrypts the root volume and gives no
public IP; the instance profile may only read the two secrets the shop needs
(the database credentials RDS manages and the cache auth token). The group
replaces instances on liveness only, the EC2 status checks: the load balancer's
check is `/readyz`, readiness, which fails on every server at once when the
database fails over, and must take them out of routing, not out of the fleet.
Instances are replaced by a rolling instance refresh that keeps 90 % of the
capacity in service.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components import PROJECT_TAG, ROLE_TAG, STACK_TAG, TIER_TAG, tags

EC2_TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


@dataclass(frozen=True)
class AppArgs:
    project: str
    stack: str
    subnet_ids: list[pulumi.Input[str]]  # app subnets, one per zone used
    security_group_id: pulumi.Input[str]
    target_group_arn: pulumi.Input[str]
    ami_id: str
    instance_type: str
    volume_gb: int
    min_size: int
    max_size: int
    desired_capacity: int
    readable_secret_arns: list[pulumi.Input[str]]


class App(pulumi.ComponentResource):
    auto_scaling_group_name: pulumi.Output[str]

    def __init__(self, name: str, args: AppArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("shop:infra:App", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tier = "app"

        # Every EBS volume in the account and region is encrypted, not only ours.
        aws.ebs.EncryptionByDefault(f"{name}-ebs-encryption-by-default", enabled=True, opts=child)

        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=EC2_TRUST_POLICY,
            tags=tags(args.project, args.stack, tier, "app-role"),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-read-secrets",
            role=role.id,
            policy=pulumi.Output.all(*args.readable_secret_arns).apply(_read_secrets_policy),
            opts=child,
        )
        profile = aws.iam.InstanceProfile(f"{name}-profile", role=role.name, opts=child)

        instance_tags = tags(args.project, args.stack, tier, "app", **{ROLE_TAG: "shop"})
        template = aws.ec2.LaunchTemplate(
            f"{name}-lt",
            image_id=args.ami_id,
            instance_type=args.instance_type,
            iam_instance_profile={"arn": profile.arn},
            update_default_version=True,
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
            },
            network_interfaces=[
                {
                    "associate_public_ip_address": "false",
                    "delete_on_termination": "true",
                    "security_groups": [args.security_group_id],
                }
            ],
            block_device_mappings=[
                {
                    "device_name": "/dev/xvda",
                    "ebs": {
                        "encrypted": "true",
                        "volume_size": args.volume_gb,
                        "volume_type": "gp3",
                        "delete_on_termination": "true",
                    },
                }
            ],
            monitoring={"enabled": True},
            tag_specifications=[
                {"resource_type": "instance", "tags": instance_tags},
                {"resource_type": "volume", "tags": instance_tags},
            ],
            tags=tags(args.project, args.stack, tier, "app-lt"),
            opts=child,
        )
        group = aws.autoscaling.Group(
            f"{name}-asg",
            vpc_zone_identifiers=args.subnet_ids,
            min_size=args.min_size,
            max_size=args.max_size,
            desired_capacity=args.desired_capacity,
            # Not "ELB": the target group checks readiness (/readyz, the database), and a
            # database failover would have the whole fleet recycled. The target group still
            # routes on readiness; a crashed shop process is restarted by systemd.
            health_check_type="EC2",
            health_check_grace_period=120,
            target_group_arns=[args.target_group_arn],
            capacity_rebalance=True,
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            instance_refresh={
                "strategy": "Rolling",
                "preferences": {"min_healthy_percentage": 90, "instance_warmup": "120"},
            },
            tags=[
                {"key": key, "value": value, "propagate_at_launch": True}
                for key, value in instance_tags.items()
                if key in (PROJECT_TAG, STACK_TAG, TIER_TAG, ROLE_TAG, "Name")
            ],
            opts=child,
        )
        self.auto_scaling_group_name = group.name
        self.register_outputs({"auto_scaling_group_name": group.name})


def _read_secrets_policy(secret_arns: list[str]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReadShopSecrets",
                    "Effect": "Allow",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": sorted(secret_arns),
                }
            ],
        }
    )
