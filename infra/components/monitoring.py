"""Monitoring: the Prometheus + Alertmanager host in the mgmt tier.

It has no route to the internet and no inbound rule: operators and Ansible
reach it over SSM Session Manager through VPC interface endpoints in the mgmt
subnets, and from it (the mgmt tier is the SSH path) the app hosts. Prometheus
finds the app hosts through EC2 discovery; Alertmanager pages through an SNS
topic whose subscriptions (mail, and a pager webhook kept as a Pulumi secret)
live here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components import ROLE_TAG, ZONE_TAG, tags
from infra.components.app import EC2_TRUST_POLICY

# Debian 12 images published by the Debian cloud team's AWS account.
DEBIAN_OWNER = "136693071363"
DEBIAN_IMAGE_NAME = "debian-12-amd64-*"
SSM_MANAGED_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"


@dataclass(frozen=True)
class MonitoringArgs:
    project: str
    stack: str
    region: str
    zone_letter: str
    subnet_id: pulumi.Input[str]  # the mgmt subnet of zone_letter
    endpoint_subnet_ids: list[pulumi.Input[str]]  # mgmt subnets of every zone used
    vpc_id: pulumi.Input[str]
    security_group_id: pulumi.Input[str]
    endpoint_security_group_id: pulumi.Input[str]
    endpoint_services: tuple[str, ...]
    instance_type: str
    alert_email: str | None
    pager_webhook_url: pulumi.Output[str] | None


class Monitoring(pulumi.ComponentResource):
    instance_id: pulumi.Output[str]
    private_ip: pulumi.Output[str]
    alert_topic_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("shop:infra:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tier = "mgmt"

        for service in args.endpoint_services:
            aws.ec2.VpcEndpoint(
                f"{name}-endpoint-{service}",
                vpc_id=args.vpc_id,
                service_name=f"com.amazonaws.{args.region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=args.endpoint_subnet_ids,
                security_group_ids=[args.endpoint_security_group_id],
                tags=tags(args.project, args.stack, tier, f"endpoint-{service}"),
                opts=child,
            )

        topic = aws.sns.Topic(
            f"{name}-alerts",
            kms_master_key_id="alias/aws/sns",
            tags=tags(args.project, args.stack, tier, "alerts"),
            opts=child,
        )
        if args.alert_email:
            aws.sns.TopicSubscription(
                f"{name}-alerts-email",
                topic=topic.arn,
                protocol="email",
                endpoint=args.alert_email,
                opts=child,
            )
        if args.pager_webhook_url is not None:
            aws.sns.TopicSubscription(
                f"{name}-alerts-pager",
                topic=topic.arn,
                protocol="https",
                endpoint=args.pager_webhook_url,
                opts=child,
            )

        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=EC2_TRUST_POLICY,
            tags=tags(args.project, args.stack, tier, "monitoring-role"),
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-ssm", role=role.name, policy_arn=SSM_MANAGED_POLICY, opts=child
        )
        aws.iam.RolePolicy(
            f"{name}-discover-and-alert",
            role=role.id,
            policy=topic.arn.apply(_monitoring_policy),
            opts=child,
        )
        profile = aws.iam.InstanceProfile(f"{name}-profile", role=role.name, opts=child)

        image = aws.ec2.get_ami_output(
            most_recent=True,
            owners=[DEBIAN_OWNER],
            filters=[{"name": "name", "values": [DEBIAN_IMAGE_NAME]}],
        )
        host = aws.ec2.Instance(
            f"{name}-host",
            ami=image.id,
            instance_type=args.instance_type,
            subnet_id=args.subnet_id,
            vpc_security_group_ids=[args.security_group_id],
            associate_public_ip_address=False,
            iam_instance_profile=profile.name,
            monitoring=True,
            ebs_optimized=True,
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
            },
            root_block_device={"encrypted": True, "volume_type": "gp3", "volume_size": 30},
            tags=tags(
                args.project,
                args.stack,
                tier,
                "monitoring",
                **{ZONE_TAG: args.zone_letter, ROLE_TAG: "monitoring"},
            ),
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["ami"]),
        )
        self.instance_id = host.id
        self.private_ip = host.private_ip
        self.alert_topic_arn = topic.arn
        self.register_outputs({"instance_id": host.id, "alert_topic_arn": topic.arn})


def _monitoring_policy(topic_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    # EC2 Describe* calls support no resource-level permissions.
                    "Sid": "PrometheusEc2Discovery",
                    "Effect": "Allow",
                    "Action": ["ec2:DescribeInstances", "ec2:DescribeAvailabilityZones"],
                    "Resource": "*",
                },
                {
                    "Sid": "AlertmanagerPublish",
                    "Effect": "Allow",
                    "Action": "sns:Publish",
                    "Resource": topic_arn,
                },
            ],
        }
    )
