"""Network: a VPC over the stack's zones with one subnet per tier and zone.

Public (DMZ) subnets route to the internet gateway and hold the load balancer
and the NAT gateways; app subnets route out through NAT; data and mgmt
subnets have no route out at all. No subnet hands out public IPs, the default
security group is emptied, and flow logs of all traffic go to the log bucket.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components import ZONE_TAG, tags
from infra.realisation import (
    INTERNET_CIDR,
    NAT_ROUTED_TIERS,
    PUBLIC_SUBNET_TIER,
    SUBNET_TIERS,
    AddressPlan,
)


@dataclass(frozen=True)
class NetworkArgs:
    project: str
    stack: str
    plan: AddressPlan
    zones: list[str]  # AWS zone names, e.g. eu-central-1a
    zone_letters: list[str]  # topology zone names, e.g. a
    nat_per_zone: bool
    log_retention_days: int
    force_destroy_logs: bool  # dev and staging may drop their log bucket with the stack


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    log_bucket_name: pulumi.Output[str]
    # tier -> zone letter -> subnet id
    subnet_ids: dict[str, dict[str, pulumi.Output[str]]]

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("shop:infra:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        def tag(tier: str, label: str, **extra: str) -> dict[str, str]:
            return tags(args.project, args.stack, tier, label, **extra)

        log_bucket = _log_bucket(f"{name}-logs", args, child)
        self.log_bucket_name = log_bucket.bucket

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.plan.vpc_cidr,
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags=tag("network", "vpc"),
            opts=child,
        )
        self.vpc_id = vpc.id
        # Adopt the default security group with no rules: nothing may use it.
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=vpc.id,
            ingress=[],
            egress=[],
            tags=tag("network", "default-sg-locked"),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="s3",
            log_destination=pulumi.Output.concat(log_bucket.arn, "/vpc-flow-logs/"),
            max_aggregation_interval=60,
            tags=tag("network", "flow-log"),
            opts=child,
        )
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags=tag(PUBLIC_SUBNET_TIER, "igw"), opts=child
        )

        self.subnet_ids = {}
        for tier in SUBNET_TIERS:
            self.subnet_ids[tier] = {}
            for index, (zone, letter) in enumerate(zip(args.zones, args.zone_letters, strict=True)):
                subnet = aws.ec2.Subnet(
                    f"{name}-{tier}-{letter}",
                    vpc_id=vpc.id,
                    cidr_block=args.plan.subnet_cidr(tier, index),
                    availability_zone=zone,
                    map_public_ip_on_launch=False,
                    tags=tag(tier, f"{tier}-{letter}", **{ZONE_TAG: letter}),
                    opts=child,
                )
                self.subnet_ids[tier][letter] = subnet.id

        public_rt = aws.ec2.RouteTable(
            f"{name}-{PUBLIC_SUBNET_TIER}-rt",
            vpc_id=vpc.id,
            tags=tag(PUBLIC_SUBNET_TIER, f"{PUBLIC_SUBNET_TIER}-rt"),
            opts=child,
        )
        aws.ec2.Route(
            f"{name}-{PUBLIC_SUBNET_TIER}-default-route",
            route_table_id=public_rt.id,
            destination_cidr_block=INTERNET_CIDR,
            gateway_id=igw.id,
            opts=child,
        )
        for letter, subnet_id in self.subnet_ids[PUBLIC_SUBNET_TIER].items():
            aws.ec2.RouteTableAssociation(
                f"{name}-{PUBLIC_SUBNET_TIER}-{letter}-rta",
                subnet_id=subnet_id,
                route_table_id=public_rt.id,
                opts=child,
            )

        nat_letters = args.zone_letters if args.nat_per_zone else args.zone_letters[:1]
        nat_ids: dict[str, pulumi.Output[str]] = {}
        for letter in nat_letters:
            eip = aws.ec2.Eip(
                f"{name}-nat-{letter}-eip",
                domain="vpc",
                tags=tag(PUBLIC_SUBNET_TIER, f"nat-{letter}", **{ZONE_TAG: letter}),
                opts=child,
            )
            nat = aws.ec2.NatGateway(
                f"{name}-nat-{letter}",
                allocation_id=eip.id,
                subnet_id=self.subnet_ids[PUBLIC_SUBNET_TIER][letter],
                tags=tag(PUBLIC_SUBNET_TIER, f"nat-{letter}", **{ZONE_TAG: letter}),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
            )
            nat_ids[letter] = nat.id

        for tier in SUBNET_TIERS:
            if tier == PUBLIC_SUBNET_TIER:
                continue
            for letter, subnet_id in self.subnet_ids[tier].items():
                rt = aws.ec2.RouteTable(
                    f"{name}-{tier}-{letter}-rt",
                    vpc_id=vpc.id,
                    tags=tag(tier, f"{tier}-{letter}-rt", **{ZONE_TAG: letter}),
                    opts=child,
                )
                if tier in NAT_ROUTED_TIERS:
                    # the zone's own NAT gateway where there is one, else the shared one
                    nat_id = nat_ids.get(letter, nat_ids[nat_letters[0]])
                    aws.ec2.Route(
                        f"{name}-{tier}-{letter}-default-route",
                        route_table_id=rt.id,
                        destination_cidr_block=INTERNET_CIDR,
                        nat_gateway_id=nat_id,
                        opts=child,
                    )
                aws.ec2.RouteTableAssociation(
                    f"{name}-{tier}-{letter}-rta",
                    subnet_id=subnet_id,
                    route_table_id=rt.id,
                    opts=child,
                )

        self.register_outputs({"vpc_id": self.vpc_id, "log_bucket": self.log_bucket_name})


def _log_bucket(name: str, args: NetworkArgs, opts: pulumi.ResourceOptions) -> aws.s3.Bucket:
    """The encrypted, private, TLS-only bucket for VPC flow logs and ALB access logs.

    ALB access logs support SSE-S3 only (not SSE-KMS), hence AES256.
    """
    bucket = aws.s3.Bucket(
        name,
        force_destroy=args.force_destroy_logs,
        tags=tags(args.project, args.stack, "network", "logs"),
        opts=opts,
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-sse",
        bucket=bucket.id,
        rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
        opts=opts,
    )
    aws.s3.BucketPublicAccessBlock(
        f"{name}-no-public",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=opts,
    )
    aws.s3.BucketOwnershipControls(
        f"{name}-owner",
        bucket=bucket.id,
        rule={"object_ownership": "BucketOwnerEnforced"},
        opts=opts,
    )
    aws.s3.BucketLifecycleConfiguration(
        f"{name}-expiry",
        bucket=bucket.id,
        rules=[
            {
                "id": "expire-logs",
                "status": "Enabled",
                "filter": {},
                "expiration": {"days": args.log_retention_days},
            }
        ],
        opts=opts,
    )
    elb_account = aws.elb.get_service_account_output()
    caller = aws.get_caller_identity_output()
    policy = pulumi.Output.all(bucket.arn, elb_account.arn, caller.account_id).apply(
        lambda values: _log_bucket_policy(*values)
    )
    aws.s3.BucketPolicy(f"{name}-policy", bucket=bucket.id, policy=policy, opts=opts)
    return bucket


def _log_bucket_policy(bucket_arn: str, elb_account_arn: str, account_id: str) -> str:
    alb_prefix = f"{bucket_arn}/alb/AWSLogs/{account_id}/*"
    flow_prefix = f"{bucket_arn}/vpc-flow-logs/AWSLogs/{account_id}/*"
    statements = [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "AlbAccessLogsRegionAccount",
            "Effect": "Allow",
            "Principal": {"AWS": elb_account_arn},
            "Action": "s3:PutObject",
            "Resource": alb_prefix,
        },
        {
            "Sid": "AlbAccessLogsServicePrincipal",
            "Effect": "Allow",
            "Principal": {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": alb_prefix,
        },
        {
            "Sid": "FlowLogsWrite",
            "Effect": "Allow",
            "Principal": {"Service": "delivery.logs.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": flow_prefix,
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        },
        {
            "Sid": "FlowLogsAclCheck",
            "Effect": "Allow",
            "Principal": {"Service": "delivery.logs.amazonaws.com"},
            "Action": ["s3:GetBucketAcl", "s3:ListBucket"],
            "Resource": bucket_arn,
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})
