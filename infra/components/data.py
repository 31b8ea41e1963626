"""Data tier: RDS PostgreSQL (Multi-AZ) and ElastiCache Redis in the isolated subnets.

The primary is a Multi-AZ deployment (a synchronous standby in a second zone);
its subnet group holds exactly two zones, so the pair's zones are known. Read
replicas (prod) are Multi-AZ too, placed with subnet groups that start at the
zones the primary pair does not use. Storage is encrypted, nothing is public,
the port is the topology's (not the engine default), and the master password
is created and rotated by RDS in Secrets Manager - no password in code or
config. The cache runs one node per zone with TLS and an auth token that
comes from a Pulumi secret and is handed to the app through Secrets Manager.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components import ZONE_TAG, tags

DB_NAME = "shop"
DB_MASTER_USER = "shop_admin"
CACHE_ENGINE_VERSION = "7.1"


@dataclass(frozen=True)
class DataArgs:
    project: str
    stack: str
    zone_letters: list[str]
    zones: list[str]  # AWS zone names, same order as zone_letters
    subnet_ids: dict[str, pulumi.Output[str]]  # zone letter -> data subnet id
    security_group_id: pulumi.Input[str]
    postgres_port: int
    redis_port: int
    db_instance_class: str
    db_engine_version: str
    db_allocated_storage_gb: int
    db_max_allocated_storage_gb: int
    db_backup_retention_days: int
    db_read_replicas: int
    cache_node_type: str
    cache_auth_token: pulumi.Output[str]
    deletion_protection: bool


def zone_pairs(zone_letters: list[str], replicas: int) -> list[list[str]]:
    """Two-zone subnet groups: the primary's first, then one per replica.

    Replica i starts at the zones after the primary pair, so with three zones
    and one replica the nodes cover a, b (primary pair) and c, a (replica pair).
    """
    count = len(zone_letters)
    pairs = [zone_letters[:2]]
    for index in range(replicas):
        first = (2 + index) % count
        pairs.append([zone_letters[first], zone_letters[(first + 1) % count]])
    return pairs


class Data(pulumi.ComponentResource):
    db_address: pulumi.Output[str]
    db_port: pulumi.Output[int]
    db_secret_arn: pulumi.Output[str]
    cache_endpoint: pulumi.Output[str]
    cache_secret_arn: pulumi.Output[str]

    def __init__(self, name: str, args: DataArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("shop:infra:Data", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        protect = pulumi.ResourceOptions(parent=self, protect=args.deletion_protection)
        tier = "data"
        major = args.db_engine_version.split(".")[0]

        parameters = aws.rds.ParameterGroup(
            f"{name}-pg-params",
            family=f"postgres{major}",
            parameters=[
                {"name": "rds.force_ssl", "value": "1"},
                {"name": "log_min_duration_statement", "value": "500"},
            ],
            tags=tags(args.project, args.stack, tier, "pg-params"),
            opts=child,
        )
        pairs = zone_pairs(args.zone_letters, args.db_read_replicas)
        subnet_groups = [
            aws.rds.SubnetGroup(
                f"{name}-db-subnets-{''.join(pair)}",
                subnet_ids=[args.subnet_ids[letter] for letter in pair],
                tags=tags(args.project, args.stack, tier, f"db-subnets-{''.join(pair)}"),
                opts=child,
            )
            for pair in pairs
        ]
        common = {
            "instance_class": args.db_instance_class,
            "multi_az": True,
            "publicly_accessible": False,
            "storage_encrypted": True,
            "storage_type": "gp3",
            "port": args.postgres_port,
            "vpc_security_group_ids": [args.security_group_id],
            "parameter_group_name": parameters.name,
            "backup_retention_period": args.db_backup_retention_days,
            "auto_minor_version_upgrade": True,
            "deletion_protection": args.deletion_protection,
            "copy_tags_to_snapshot": True,
            "iam_database_authentication_enabled": True,
            "enabled_cloudwatch_logs_exports": ["postgresql", "upgrade"],
            "performance_insights_enabled": True,
            "max_allocated_storage": args.db_max_allocated_storage_gb,
        }
        primary = aws.rds.Instance(
            f"{name}-postgres",
            engine="postgres",
            engine_version=args.db_engine_version,
            db_name=DB_NAME,
            username=DB_MASTER_USER,
            manage_master_user_password=True,
            allocated_storage=args.db_allocated_storage_gb,
            db_subnet_group_name=subnet_groups[0].name,
            skip_final_snapshot=not args.deletion_protection,
            final_snapshot_identifier=(
                f"{args.project}-{args.stack}-final" if args.deletion_protection else None
            ),
            tags=tags(args.project, args.stack, tier, "postgres", **{ZONE_TAG: "".join(pairs[0])}),
            **common,
            opts=protect,
        )
        for index, group in enumerate(subnet_groups[1:], start=1):
            aws.rds.Instance(
                f"{name}-postgres-replica-{index}",
                replicate_source_db=primary.identifier,
                db_subnet_group_name=group.name,
                skip_final_snapshot=True,
                tags=tags(
                    args.project,
                    args.stack,
                    tier,
                    f"postgres-replica-{index}",
                    **{ZONE_TAG: "".join(pairs[index])},
                ),
                **common,
                opts=protect,
            )

        cache_subnets = aws.elasticache.SubnetGroup(
            f"{name}-cache-subnets",
            subnet_ids=list(args.subnet_ids.values()),
            tags=tags(args.project, args.stack, tier, "cache-subnets"),
            opts=child,
        )
        cache = aws.elasticache.ReplicationGroup(
            f"{name}-redis",
            description="shop cache",
            engine="redis",
            engine_version=CACHE_ENGINE_VERSION,
            node_type=args.cache_node_type,
            port=args.redis_port,
            num_cache_clusters=len(args.zones),
            preferred_cache_cluster_azs=args.zones,
            automatic_failover_enabled=True,
            multi_az_enabled=True,
            subnet_group_name=cache_subnets.name,
            security_group_ids=[args.security_group_id],
            at_rest_encryption_enabled=True,
            transit_encryption_enabled=True,
            auth_token=args.cache_auth_token,
            auto_minor_version_upgrade=True,
            snapshot_retention_limit=args.db_backup_retention_days,
            tags=tags(args.project, args.stack, tier, "redis"),
            opts=child,
        )
        cache_secret = aws.secretsmanager.Secret(
            f"{name}-cache-auth",
            description="Auth token of the shop's Redis (TLS) - read by the app hosts",
            tags=tags(args.project, args.stack, tier, "cache-auth"),
            opts=child,
        )
        aws.secretsmanager.SecretVersion(
            f"{name}-cache-auth-value",
            secret_id=cache_secret.id,
            secret_string=args.cache_auth_token,
            opts=child,
        )

        self.db_address = primary.address
        self.db_port = primary.port
        self.db_secret_arn = primary.master_user_secrets.apply(lambda s: s[0].secret_arn)
        self.cache_endpoint = cache.primary_endpoint_address
        self.cache_secret_arn = cache_secret.arn
        self.register_outputs(
            {"db_address": self.db_address, "cache_endpoint": self.cache_endpoint}
        )
