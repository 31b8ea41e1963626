"""The shop's AWS stack: six components composed from the stack's config.

`pulumi up` runs this file with infra/ as the program directory, in the project
venv (Pulumi.yaml), where `infra` and `topology` are installed packages.
"""

import pulumi

import topology
from infra import inventory, realisation, settings
from infra.components.app import App, AppArgs
from infra.components.data import Data, DataArgs
from infra.components.edge import Edge, EdgeArgs
from infra.components.firewall import Firewall, FirewallArgs
from infra.components.monitoring import Monitoring, MonitoringArgs
from infra.components.network import Network, NetworkArgs

topo = topology.load()
cfg = settings.load(topo)
plan = realisation.AddressPlan(cfg.vpc_cidr)
letters = list(cfg.zone_letters)

network = Network(
    "network",
    NetworkArgs(
        project=cfg.project,
        stack=cfg.stack,
        plan=plan,
        zones=cfg.zones,
        zone_letters=letters,
        nat_per_zone=cfg.nat_per_zone,
        log_retention_days=cfg.log_retention_days,
        force_destroy_logs=not cfg.deletion_protection,
    ),
)
firewall = Firewall(
    "firewall",
    FirewallArgs(
        project=cfg.project,
        stack=cfg.stack,
        vpc_id=network.vpc_id,
        plan=plan,
        flows=realisation.realised_flows(topo),
        nat_routed_tiers=realisation.NAT_ROUTED_TIERS,
        subnet_ids=network.subnet_ids,
    ),
)
sg = firewall.security_group_ids
edge = Edge(
    "edge",
    EdgeArgs(
        project=cfg.project,
        stack=cfg.stack,
        vpc_id=network.vpc_id,
        subnet_ids=list(network.subnet_ids["dmz"].values()),
        security_group_id=sg["dmz"],
        log_bucket_name=network.log_bucket_name,
        domain_name=cfg.domain_name,
        hosted_zone_id=cfg.hosted_zone_id,
        http_port=topo.port("http"),
        https_port=topo.port("https"),
        app_port=topo.port("app"),
        deletion_protection=cfg.deletion_protection,
        waf_rate_limit_per_5min=cfg.waf_rate_limit_per_5min,
        admin_cidrs=cfg.admin_cidrs,
    ),
)
data = Data(
    "data",
    DataArgs(
        project=cfg.project,
        stack=cfg.stack,
        zone_letters=letters,
        zones=cfg.zones,
        subnet_ids=network.subnet_ids["data"],
        security_group_id=sg["data"],
        postgres_port=topo.port("postgres"),
        redis_port=topo.port("redis"),
        db_instance_class=cfg.data.db_instance_class,
        db_engine_version=cfg.data.db_engine_version,
        db_allocated_storage_gb=cfg.data.db_allocated_storage_gb,
        db_max_allocated_storage_gb=cfg.data.db_max_allocated_storage_gb,
        db_backup_retention_days=cfg.data.db_backup_retention_days,
        db_read_replicas=cfg.data.db_read_replicas,
        cache_node_type=cfg.data.cache_node_type,
        cache_auth_token=cfg.cache_auth_token,
        deletion_protection=cfg.deletion_protection,
    ),
)
app = App(
    "app",
    AppArgs(
        project=cfg.project,
        stack=cfg.stack,
        subnet_ids=list(network.subnet_ids["app"].values()),
        security_group_id=sg["app"],
        target_group_arn=edge.target_group_arn,
        ami_id=cfg.app.ami_id,
        instance_type=cfg.app.instance_type,
        volume_gb=cfg.app.volume_gb,
        min_size=cfg.app.min_size,
        max_size=cfg.app.max_size,
        desired_capacity=cfg.app.desired_capacity,
        readable_secret_arns=[data.db_secret_arn, data.cache_secret_arn],
    ),
)
monitoring = Monitoring(
    "monitoring",
    MonitoringArgs(
        project=cfg.project,
        stack=cfg.stack,
        region=cfg.region,
        zone_letter=letters[0],
        subnet_id=network.subnet_ids["mgmt"][letters[0]],
        endpoint_subnet_ids=list(network.subnet_ids["mgmt"].values()),
        vpc_id=network.vpc_id,
        security_group_id=sg["mgmt"],
        endpoint_security_group_id=sg[realisation.AWS_API_TIER],
        endpoint_services=realisation.AWS_API_ENDPOINT_SERVICES,
        instance_type=cfg.monitoring_instance_type,
        alert_email=cfg.alert_email,
        pager_webhook_url=cfg.pager_webhook_url,
    ),
)

pulumi.export("url", edge.url)
pulumi.export(
    "endpoints",
    {
        "alb_dns_name": edge.dns_name,
        "db_address": data.db_address,
        "db_port": data.db_port,
        "db_secret_arn": data.db_secret_arn,
        "cache_endpoint": data.cache_endpoint,
        "cache_port": topo.port("redis"),
        "cache_secret_arn": data.cache_secret_arn,
        "monitoring_instance_id": monitoring.instance_id,
        "alert_topic_arn": monitoring.alert_topic_arn,
        "app_auto_scaling_group": app.auto_scaling_group_name,
    },
)
pulumi.export("ansible_inventory", inventory.aws_ec2_inventory(cfg.project, cfg.stack, cfg.region))
pulumi.export("ansible_tag_scheme", inventory.tag_scheme())
# The firewall role's sources on AWS (playbooks/inventories/aws/group_vars): each tier's
# subnets in every zone; one tier block covers them all.
pulumi.export("tier_cidrs", {tier: [plan.tier_cidr(tier)] for tier in realisation.SUBNET_TIERS})
pulumi.export(
    "ansible_static_hosts",
    {"tier_mgmt": {f"zone_{letters[0]}": [monitoring.instance_id]}},
)
