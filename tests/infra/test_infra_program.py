"""The whole program of every stack under Pulumi's mocks: what it declares, input by input."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

import topology
from infra import realisation
from infra.rules import NACL_RULES_PER_DIRECTION
from tests.infra.model import StackModel, run_stack

INFRA = Path(__file__).resolve().parents[2] / "infra"
COMPONENTS = {"Network", "Firewall", "Edge", "App", "Data", "Monitoring"}
TAGGED_TYPES = {
    "aws:ec2/vpc:Vpc",
    "aws:ec2/subnet:Subnet",
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/networkAcl:NetworkAcl",
    "aws:ec2/launchTemplate:LaunchTemplate",
    "aws:ec2/instance:Instance",
    "aws:rds/instance:Instance",
    "aws:lb/loadBalancer:LoadBalancer",
    "aws:elasticache/replicationGroup:ReplicationGroup",
    "aws:s3/bucket:Bucket",
}


def test_six_components_hold_every_resource(model: StackModel) -> None:
    components = {r.urn: r for r in model.resources if r.type.startswith("shop:infra:")}
    assert {r.type.removeprefix("shop:infra:") for r in components.values()} == COMPONENTS
    loose = [r.name for r in model.custom_resources() if r.parent not in components]
    assert not loose, f"resources outside the six components: {loose}"


def test_resources_carry_the_stack_tags(model: StackModel) -> None:
    for resource in model.custom_resources():
        if resource.type in TAGGED_TYPES:
            assert resource.tags.get("stack") == model.stack, resource.name
            assert resource.tags.get("project") == "shop-ops", resource.name
            assert resource.tags.get("tier"), resource.name


def test_program_restates_no_topology_port() -> None:
    """Ports come from topology.load(); a literal port number in infra code is a second source."""
    numbers = {str(p) for p in topology.load().ports.values()}
    offenders = []
    for path in [*INFRA.glob("*.py"), *INFRA.glob("components/*.py")]:
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("#", 1)[0]
            hits = set(re.findall(r"(?<![\w.-])\d+(?![\w.-])", code)) & numbers
            if hits:
                offenders.append(f"{path.name}:{lineno}: {sorted(hits)}")
    assert not offenders, offenders


def test_subnets_per_tier_and_zone_never_assign_public_ips(model: StackModel) -> None:
    zones = int(model.config_value("zoneCount"))
    subnets = model.of_type("aws:ec2/subnet:Subnet")
    assert len(subnets) == len(realisation.SUBNET_TIERS) * zones
    region = model.config["aws:region"]
    seen = {(s.tags["tier"], s.inputs["availabilityZone"]) for s in subnets}
    expected_zones = {f"{region}{z}" for z in topology.load().zones[:zones]}
    assert seen == {(t, z) for t in realisation.SUBNET_TIERS for z in expected_zones}
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)


def test_routes_dmz_to_internet_app_through_nat_data_and_mgmt_nowhere(model: StackModel) -> None:
    tables = {t.id: t for t in model.of_type("aws:ec2/routeTable:RouteTable")}
    nats = {n.id: n for n in model.of_type("aws:ec2/natGateway:NatGateway")}
    by_tier: dict[str, list[dict]] = {}
    for route in model.of_type("aws:ec2/route:Route"):
        by_tier.setdefault(tables[route.inputs["routeTableId"]].tags["tier"], []).append(
            route.inputs
        )
    assert set(by_tier) == {"dmz", "app"}, "data and mgmt must have no route out"
    assert all(r.get("gatewayId") for r in by_tier["dmz"])
    assert all(r.get("natGatewayId") in nats for r in by_tier["app"])


def test_one_nat_gateway_per_zone_in_prod_one_elsewhere(model: StackModel) -> None:
    nats = model.of_type("aws:ec2/natGateway:NatGateway")
    zones = int(model.config_value("zoneCount"))
    per_zone = model.config_value("natPerZone") == "true"
    assert len(nats) == (zones if per_zone else 1)
    if model.stack == "prod":
        assert per_zone and len(nats) == zones
    used = {
        r.inputs["natGatewayId"]
        for r in model.of_type("aws:ec2/route:Route")
        if "natGatewayId" in r.inputs
    }
    assert used == {n.id for n in nats}


def test_flow_logs_capture_all_traffic_to_the_log_bucket(model: StackModel) -> None:
    flow_log = model.one("aws:ec2/flowLog:FlowLog")
    bucket = model.one("aws:s3/bucket:Bucket")
    assert flow_log.inputs["trafficType"] == "ALL"
    assert flow_log.inputs["logDestination"].startswith(bucket.state["arn"])


def test_log_bucket_is_encrypted_private_and_tls_only(model: StackModel) -> None:
    sse = model.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    rule = sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]
    assert rule["sseAlgorithm"] == "AES256"
    block = model.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(
        block[k] is True
        for k in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
    )
    policy = json.loads(model.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    deny = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_load_balancer_logs_to_the_bucket_and_waf_guards_it(model: StackModel) -> None:
    lb = model.one("aws:lb/loadBalancer:LoadBalancer")
    bucket = model.one("aws:s3/bucket:Bucket")
    assert lb.inputs["accessLogs"]["bucket"] == bucket.state["bucket"]
    acl = model.one("aws:wafv2/webAcl:WebAcl")
    names = {r["name"] for r in acl.inputs["rules"]}
    assert {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"} <= names
    rate = [r for r in acl.inputs["rules"] if "rateBasedStatement" in r["statement"]]
    assert rate and rate[0]["action"] == {"block": {}}
    assert rate[0]["statement"]["rateBasedStatement"]["limit"] == int(
        model.config_value("wafRateLimitPer5Min")
    )
    association = model.one("aws:wafv2/webAclAssociation:WebAclAssociation")
    assert association.inputs["resourceArn"] == lb.state["arn"]


def test_https_listener_uses_the_validated_certificate(model: StackModel) -> None:
    topo = topology.load()
    listeners = {x.inputs["port"]: x.inputs for x in model.of_type("aws:lb/listener:Listener")}
    assert set(listeners) == {topo.port("http"), topo.port("https")}
    validation = model.one("aws:acm/certificateValidation:CertificateValidation")
    assert listeners[topo.port("https")]["certificateArn"] == validation.state["certificateArn"]
    redirect = listeners[topo.port("http")]["defaultActions"][0]["redirect"]
    assert redirect["port"] == str(topo.port("https"))


def test_app_group_replaces_on_ec2_status_routes_on_readiness_and_refreshes_rolling(
    model: StackModel,
) -> None:
    """Readiness (/readyz) fails fleet-wide in a database failover: it routes, never recycles."""
    group = model.one("aws:autoscaling/group:Group")
    target_group = model.one("aws:lb/targetGroup:TargetGroup")
    assert group.inputs["healthCheckType"] == "EC2"
    assert group.inputs["targetGroupArns"] == [target_group.state["arn"]]
    assert target_group.inputs["port"] == topology.load().port("app")
    assert target_group.inputs["healthCheck"]["path"] == "/readyz"
    refresh = group.inputs["instanceRefresh"]
    assert refresh["strategy"] == "Rolling"
    assert refresh["preferences"]["minHealthyPercentage"] >= 90
    assert group.inputs["minSize"] >= int(model.config_value("zoneCount"))


def test_target_group_speaks_https_to_the_app_servers_and_checks_readiness_over_it(
    model: StackModel,
) -> None:
    """The shop serves TLS only on the app port: traffic and health checks are HTTPS."""
    target_group = model.one("aws:lb/targetGroup:TargetGroup")
    assert target_group.inputs["protocol"] == "HTTPS"
    assert target_group.inputs["port"] == topology.load().port("app")
    health_check = target_group.inputs["healthCheck"]
    assert health_check["protocol"] == "HTTPS"
    assert health_check["path"] == "/readyz"
    assert health_check["port"] == "traffic-port"


def test_app_role_reads_only_the_two_shop_secrets(model: StackModel) -> None:
    role_policies = [
        json.loads(p.inputs["policy"])
        for p in model.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.name.startswith("app-")
    ]
    assert len(role_policies) == 1
    (statement,) = role_policies[0]["Statement"]
    db = next(r for r in model.of_type("aws:rds/instance:Instance") if "replica" not in r.name)
    cache_secret = model.one("aws:secretsmanager/secret:Secret")
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert statement["Resource"] == sorted(
        [db.state["masterUserSecrets"][0]["secretArn"], cache_secret.state["arn"]]
    )


def test_database_password_is_managed_by_aws(model: StackModel) -> None:
    for db in model.of_type("aws:rds/instance:Instance"):
        assert "password" not in db.inputs
        assert db.inputs.get("port") == topology.load().port("postgres")
        if "replicateSourceDb" not in db.inputs:
            assert db.inputs["manageMasterUserPassword"] is True
    params = model.one("aws:rds/parameterGroup:ParameterGroup").inputs["parameters"]
    assert {"name": "rds.force_ssl", "value": "1"} in params


def test_secrets_stay_secret(model: StackModel) -> None:
    """Secret config reaches only inputs marked secret, and no output."""
    secret_values = [model.config[k] for k in model.secret_config_keys]
    for resource in model.resources:
        plain = json.dumps(_strip_secrets(resource.raw_inputs))
        for value in secret_values:
            assert value not in plain, f"{resource.name} has a secret in plain text"
    outputs = json.dumps(model.outputs)
    assert not any(value in outputs for value in secret_values)
    token = model.config["shop-ops:cacheAuthToken"]
    cache = model.one("aws:elasticache/replicationGroup:ReplicationGroup")
    assert cache.raw_inputs["authToken"] == {"__secret__": token}
    version = model.one("aws:secretsmanager/secretVersion:SecretVersion")
    assert version.raw_inputs["secretString"] == {"__secret__": token}


def _strip_secrets(value):
    if isinstance(value, dict):
        if set(value) == {"__secret__"}:
            return "<secret>"
        return {k: _strip_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_secrets(v) for v in value]
    return value


def test_deletion_protection_follows_the_stack(model: StackModel) -> None:
    protect = model.config_value("deletionProtection") == "true"
    assert protect == (model.stack == "prod")
    lb = model.one("aws:lb/loadBalancer:LoadBalancer")
    assert lb.inputs["enableDeletionProtection"] is protect
    for db in model.of_type("aws:rds/instance:Instance"):
        assert db.inputs["deletionProtection"] is protect
        assert db.protect is protect  # Pulumi's own protect flag too


def test_monitoring_host_is_private_and_reached_over_ssm(model: StackModel) -> None:
    host = model.one("aws:ec2/instance:Instance")
    subnet = model.by_id(host.inputs["subnetId"])
    assert subnet.tags["tier"] == "mgmt"
    assert host.inputs["associatePublicIpAddress"] is False
    mgmt_sg = next(
        g for g in model.of_type("aws:ec2/securityGroup:SecurityGroup") if g.tags["tier"] == "mgmt"
    )
    assert host.inputs["vpcSecurityGroupIds"] == [mgmt_sg.id]
    ingress = [
        r
        for r in model.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.inputs["securityGroupId"] == mgmt_sg.id
    ]
    assert ingress == []
    services = {
        e.inputs["serviceName"].rsplit(".", 1)[-1]
        for e in model.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    }
    assert {"ssm", "ssmmessages", "ec2messages"} <= services
    attachments = {
        a.inputs["policyArn"]
        for a in model.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    }
    assert attachments == {"arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"}


def test_no_port_22_from_the_internet_anywhere(model: StackModel) -> None:
    for rule in model.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"):
        if rule.inputs.get("cidrIpv4") == "0.0.0.0/0":
            assert rule.inputs["fromPort"] == rule.inputs["toPort"] != 22


def test_network_acls_stay_within_the_aws_rule_quota(model: StackModel) -> None:
    counts: dict[tuple[str, bool], int] = {}
    for rule in model.of_type("aws:ec2/networkAclRule:NetworkAclRule"):
        key = (rule.inputs["networkAclId"], bool(rule.inputs["egress"]))
        counts[key] = counts.get(key, 0) + 1
    assert counts and max(counts.values()) <= NACL_RULES_PER_DIRECTION


def test_every_attached_security_group_is_its_tiers(model: StackModel) -> None:
    groups = {g.id: g.tags["tier"] for g in model.of_type("aws:ec2/securityGroup:SecurityGroup")}
    lb = model.one("aws:lb/loadBalancer:LoadBalancer")
    assert [groups[g] for g in lb.inputs["securityGroups"]] == ["dmz"]
    template = model.one("aws:ec2/launchTemplate:LaunchTemplate")
    assert [groups[g] for g in template.inputs["networkInterfaces"][0]["securityGroups"]] == ["app"]
    for db in model.of_type("aws:rds/instance:Instance"):
        assert [groups[g] for g in db.inputs["vpcSecurityGroupIds"]] == ["data"]
    cache = model.one("aws:elasticache/replicationGroup:ReplicationGroup")
    assert [groups[g] for g in cache.inputs["securityGroupIds"]] == ["data"]
    for endpoint in model.of_type("aws:ec2/vpcEndpoint:VpcEndpoint"):
        assert [groups[g] for g in endpoint.inputs["securityGroupIds"]] == [
            realisation.AWS_API_TIER
        ]


def test_outputs_give_the_playbooks_inventory_and_endpoints(model: StackModel) -> None:
    topo = topology.load()
    endpoints = model.outputs["endpoints"]["value"]
    assert endpoints["db_port"] == topo.port("postgres")
    assert endpoints["cache_port"] == topo.port("redis")
    assert endpoints["alb_dns_name"].endswith("elb.amazonaws.com")
    assert endpoints["monitoring_instance_id"] == model.one("aws:ec2/instance:Instance").id
    inventory = model.outputs["ansible_inventory"]["value"]
    assert inventory["plugin"] == "amazon.aws.aws_ec2"
    assert inventory["filters"]["tag:stack"] == model.stack
    keys = [g["key"] for g in inventory["keyed_groups"]]
    assert "tags.tier" in keys
    # the tags the inventory groups on are really set on every host
    group = model.one("aws:autoscaling/group:Group")
    asg_tags = {t["key"]: t["value"] for t in group.inputs["tags"] if t["propagateAtLaunch"]}
    assert asg_tags["tier"] == "app" and asg_tags["stack"] == model.stack
    assert model.one("aws:ec2/instance:Instance").tags["tier"] == "mgmt"


def test_tier_cidrs_output_covers_exactly_each_tiers_subnets(model: StackModel) -> None:
    tier_cidrs = model.outputs["tier_cidrs"]["value"]
    subnets: dict[str, list[ipaddress.IPv4Network]] = {}
    for subnet in model.of_type("aws:ec2/subnet:Subnet"):
        subnets.setdefault(subnet.tags["tier"], []).append(
            ipaddress.IPv4Network(subnet.inputs["cidrBlock"])
        )
    assert set(tier_cidrs) == set(subnets)
    for tier, cidrs in tier_cidrs.items():
        blocks = [ipaddress.IPv4Network(c) for c in cidrs]
        for net in subnets[tier]:
            assert any(net.subnet_of(b) for b in blocks), (tier, net)
        for other, nets in subnets.items():
            if other != tier:
                assert not any(n.overlaps(b) for n in nets for b in blocks), (tier, other)
    # the AWS inventory reads exactly these keys
    group_vars = (INFRA.parent / "playbooks/inventories/aws/group_vars/all/main.yml").read_text()
    assert "aws_outputs.tier_cidrs" in group_vars and "tier_cidrs.dmz" in group_vars


BAD_CONFIG = {
    "shop-ops:zoneCount=7": "zoneCount must be in [2, 3]",
    "shop-ops:appMinSize=9": "appMinSize <= appDesiredCapacity",
    "shop-ops:dbBackupRetentionDays=3": "dbBackupRetentionDays must be in [7, 35]",
    "shop-ops:vpcCidr=10.0.0.0/8": "vpcCidr must be a /16 to /20",
    "shop-ops:hostedZoneId=": "missing config shop-ops:hostedZoneId",
    "shop-ops:adminCidrs=": "missing config shop-ops:adminCidrs",
    "shop-ops:adminCidrs=[]": "shop-ops:adminCidrs must be a non-empty list",
    'shop-ops:adminCidrs=["0.0.0.0/0"]': "shop-ops:adminCidrs entry 0.0.0.0/0 is wider than /8",
    'shop-ops:adminCidrs=["203.0.113.0/24", "198.51.100.300/24"]': (
        "shop-ops:adminCidrs entry '198.51.100.300/24' is not an IPv4 network"
    ),
    'shop-ops:adminCidrs=["203.0.113.5/24"]': "shop-ops:adminCidrs entry '203.0.113.5/24'",
    "shop-ops:adminCidrs=203.0.113.0/24": "shop-ops:adminCidrs must be a list of IPv4 CIDRs",
    "shop-ops:adminCidrs=" + json.dumps([f"203.0.113.{i}/32" for i in range(6)]): (
        "shop-ops:adminCidrs has 6 networks, at most 5"
    ),
}


@pytest.fixture(scope="module")
def bad_config_runs() -> dict[str, subprocess.CompletedProcess[str]]:
    # A few at a time: a program that wrongly accepts its config runs to the end, and a dozen
    # whole programs at once on a small CI runner would hit run_stack's timeout instead.
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = {override: pool.submit(run_stack, "dev", override) for override in BAD_CONFIG}
        return {override: future.result() for override, future in runs.items()}


@pytest.mark.parametrize("override", BAD_CONFIG)
def test_bad_config_stops_with_a_message_naming_the_key(override: str, bad_config_runs) -> None:
    result = bad_config_runs[override]
    assert result.returncode != 0
    assert BAD_CONFIG[override] in result.stderr


def test_playbooks_aws_inventory_is_the_prod_stack_output(models: dict[str, StackModel]) -> None:
    path = INFRA.parent / "playbooks" / "inventories" / "aws" / "aws_ec2.yml"
    on_disk = yaml.safe_load(path.read_text())
    assert on_disk == models["prod"].outputs["ansible_inventory"]["value"]
