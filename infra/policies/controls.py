"""AWS Security Hub controls as pulumi-policy validators.

Each control is a ResourceValidationPolicy (or, where it needs two resources
at once, a StackValidationPolicy) named after the Security Hub control it
enforces before deployment. `__main__.py` bundles them into a CrossGuard
policy pack for `pulumi preview --policy-pack infra/policies`; the tests call
the same validate functions on the mocked program's resources.

Controls marked production-only apply to stacks named in the policy config
`productionStacks` (default: prod), read from the resource's URN.

One policy is the shop's own, not Security Hub's: an internet-facing ALB's HTTPS
listener must refuse `/metrics` to every source, because the shop serves its
Prometheus metrics on the same port as its pages and only the monitoring host,
inside the VPC, may scrape them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

DB_INSTANCE = "aws:rds/instance:Instance"
SUBNET = "aws:ec2/subnet:Subnet"
INSTANCE = "aws:ec2/instance:Instance"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
DEFAULT_SG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EBS_DEFAULT_ENCRYPTION = "aws:ebs/encryptionByDefault:EncryptionByDefault"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"
REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
WEB_ACL_ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"

SG_RULE_TYPES = (SECURITY_GROUP, SG_RULE, SG_INGRESS_RULE)

PRODUCTION_STACKS_DEFAULT = ["prod"]
MIN_BACKUP_RETENTION_DAYS = 7
ENGINE_DEFAULT_PORTS = {
    "postgres": 5432,
    "mysql": 3306,
    "mariadb": 3306,
    "oracle-ee": 1521,
    "sqlserver-ee": 1433,
}
AUTHORIZED_PUBLIC_PORTS = frozenset({80, 443})  # Security Hub EC2.18 default
HIGH_RISK_PORTS = (
    20, 21, 22, 23, 25, 110, 135, 143, 445, 1433, 1434, 3000, 3306, 3389, 4333,
    5000, 5432, 5500, 5601, 8080, 8088, 8888, 9200, 9300,
)  # fmt: skip
# ELB.17: only TLS 1.2+ policies with forward secrecy (AWS's recommended set).
ALLOWED_TLS_POLICIES = frozenset(
    {
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
        "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
        "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09",
        "ELBSecurityPolicy-TLS13-1-3-2021-06",
        "ELBSecurityPolicy-TLS13-1-3-PQ-2025-09",
        "ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04",
        "ELBSecurityPolicy-TLS13-1-2-Res-FIPS-2023-04",
        "ELBSecurityPolicy-TLS13-1-3-FIPS-2023-04",
    }
)
WORLD = ("0.0.0.0/0", "::/0")

Props = Mapping[str, Any]
Check = Callable[[str, Props], Iterable[str]]  # (resource type, inputs) -> violations

CONFIG_SCHEMA = PolicyConfigSchema(
    properties={
        "productionStacks": {
            "type": "array",
            "items": {"type": "string"},
            "default": PRODUCTION_STACKS_DEFAULT,
        }
    }
)


@dataclass(frozen=True)
class Control:
    """One Security Hub control checked on the inputs of resources of some types."""

    control_id: str
    title: str
    resource_types: tuple[str, ...]
    check: Check
    production_only: bool = False

    @property
    def policy_name(self) -> str:
        return "aws-" + self.control_id.lower().replace(".", "-")

    def validate(self, args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type not in self.resource_types:
            return
        if self.production_only and not _is_production(args.urn, args.get_config()):
            return
        for message in self.check(args.resource_type, args.props):
            report_violation(f"{self.control_id} {self.title}: {message}", None)

    def policy(self) -> ResourceValidationPolicy:
        return ResourceValidationPolicy(
            name=self.policy_name,
            description=f"AWS Security Hub {self.control_id}: {self.title}",
            validate=self.validate,
            enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=CONFIG_SCHEMA if self.production_only else None,
        )


def stack_of(urn: str) -> str:
    """The stack name in a URN: urn:pulumi:<stack>::<project>::<type>::<name>."""
    return urn.removeprefix("urn:pulumi:").split("::", 1)[0]


def _is_production(urn: str, config: Mapping[str, Any]) -> bool:
    return stack_of(urn) in config.get("productionStacks", PRODUCTION_STACKS_DEFAULT)


def _is_true(value: Any) -> bool:
    """Providers take some booleans as strings ("true") in nested blocks."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _on_props(check: Callable[[Props], Iterable[str]]) -> Check:
    """A check that looks at the inputs only, whatever the resource type."""

    def on_props(_resource_type: str, props: Props) -> Iterable[str]:
        return check(props)

    return on_props


# --- RDS ------------------------------------------------------------------


def _rds_not_public(props: Props) -> Iterable[str]:
    if _is_true(props.get("publiclyAccessible")):
        yield "publiclyAccessible must be false"


def _rds_encrypted(props: Props) -> Iterable[str]:
    if not _is_true(props.get("storageEncrypted")):
        yield "storageEncrypted must be true"


def _rds_multi_az(props: Props) -> Iterable[str]:
    if not _is_true(props.get("multiAz")):
        yield "multiAz must be true"


def _rds_deletion_protection(props: Props) -> Iterable[str]:
    if not _is_true(props.get("deletionProtection")):
        yield "deletionProtection must be true"


def _rds_backups(props: Props) -> Iterable[str]:
    days = props.get("backupRetentionPeriod") or 0
    if days < MIN_BACKUP_RETENTION_DAYS:
        yield f"backupRetentionPeriod is {days}, needs at least {MIN_BACKUP_RETENTION_DAYS} days"


def _rds_minor_upgrades(props: Props) -> Iterable[str]:
    if props.get("autoMinorVersionUpgrade") is False:
        yield "autoMinorVersionUpgrade must not be false"


def _rds_non_default_port(props: Props) -> Iterable[str]:
    port = props.get("port")
    engine = props.get("engine")  # read replicas inherit the engine and leave it unset
    if port is None:
        yield "port must be set explicitly to a non-default port"
    elif engine in ENGINE_DEFAULT_PORTS and port == ENGINE_DEFAULT_PORTS[engine]:
        yield f"port {port} is the {engine} default port"
    elif engine is None and port in ENGINE_DEFAULT_PORTS.values():
        yield f"port {port} is a database engine's default port"


# --- EC2 ------------------------------------------------------------------


def _default_sg_closed(props: Props) -> Iterable[str]:
    if props.get("ingress"):
        yield "the VPC default security group must have no inbound rules"
    if props.get("egress"):
        yield "the VPC default security group must have no outbound rules"


def _imdsv2(props: Props) -> Iterable[str]:
    tokens = (props.get("metadataOptions") or {}).get("httpTokens")
    if tokens != "required":
        yield f"metadataOptions.httpTokens must be 'required' (IMDSv2), got {tokens!r}"


def _no_public_ip(props: Props) -> Iterable[str]:
    if _is_true(props.get("associatePublicIpAddress")):
        yield "associatePublicIpAddress must be false"
    for nic in props.get("networkInterfaces") or []:
        if _is_true(nic.get("associatePublicIpAddress")):
            yield "networkInterfaces[].associatePublicIpAddress must be false"


def _subnet_no_auto_public_ip(props: Props) -> Iterable[str]:
    if _is_true(props.get("mapPublicIpOnLaunch")):
        yield "mapPublicIpOnLaunch must be false"


def _ebs_encrypted(props: Props) -> Iterable[str]:
    root = props.get("rootBlockDevice")
    if root is not None and not _is_true(root.get("encrypted")):
        yield "rootBlockDevice.encrypted must be true"
    for mapping in props.get("blockDeviceMappings") or []:
        ebs = mapping.get("ebs")
        if ebs is not None and not _is_true(ebs.get("encrypted")):
            yield f"block device {mapping.get('deviceName')} must be encrypted"
    for device in props.get("ebsBlockDevices") or []:
        if not _is_true(device.get("encrypted")):
            yield f"EBS block device {device.get('deviceName')} must be encrypted"


def _ebs_encryption_by_default(props: Props) -> Iterable[str]:
    if props.get("enabled") is False:
        yield "EBS encryption by default must be enabled"


@dataclass(frozen=True)
class WorldIngress:
    """An inbound rule open to the whole internet."""

    protocol: str
    from_port: int
    to_port: int

    def covers(self, port: int) -> bool:
        if self.protocol in ("-1", "all"):
            return True
        return self.from_port <= port <= self.to_port

    def ports(self) -> str:
        if self.protocol in ("-1", "all"):
            return "all ports"
        return f"ports {self.from_port}-{self.to_port}/{self.protocol}"


def world_ingress(resource_type: str, props: Props) -> list[WorldIngress]:
    """Inbound rules from 0.0.0.0/0 or ::/0, whichever resource type declares them."""

    def make(rule: Props, protocol_key: str) -> WorldIngress:
        return WorldIngress(
            str(rule.get(protocol_key, "-1")).lower(),
            int(rule.get("fromPort") or 0),
            int(rule.get("toPort") or 65535),
        )

    found: list[WorldIngress] = []
    if resource_type == SECURITY_GROUP:
        for rule in props.get("ingress") or []:
            cidrs = [*(rule.get("cidrBlocks") or []), *(rule.get("ipv6CidrBlocks") or [])]
            if any(c in WORLD for c in cidrs):
                found.append(make(rule, "protocol"))
    elif resource_type == SG_RULE:
        cidrs = [*(props.get("cidrBlocks") or []), *(props.get("ipv6CidrBlocks") or [])]
        if props.get("type") == "ingress" and any(c in WORLD for c in cidrs):
            found.append(make(props, "protocol"))
    elif resource_type == SG_INGRESS_RULE and (
        props.get("cidrIpv4") in WORLD or props.get("cidrIpv6") in WORLD
    ):
        found.append(make(props, "ipProtocol"))
    return found


def _world_ingress_check(judge: Callable[[WorldIngress], Iterable[str]]) -> Check:
    def check(resource_type: str, props: Props) -> Iterable[str]:
        for rule in world_ingress(resource_type, props):
            yield from judge(rule)

    return check


def _no_world_ssh(rule: WorldIngress) -> Iterable[str]:
    if rule.covers(22):
        yield f"{rule.ports()} open to the internet include SSH (22)"


def _only_authorized_world_ports(rule: WorldIngress) -> Iterable[str]:
    if rule.protocol in ("-1", "all") or not (
        rule.from_port == rule.to_port and rule.from_port in AUTHORIZED_PUBLIC_PORTS
    ):
        yield f"{rule.ports()} open to the internet; only {sorted(AUTHORIZED_PUBLIC_PORTS)} may be"


def _no_world_high_risk(rule: WorldIngress) -> Iterable[str]:
    risky = [p for p in HIGH_RISK_PORTS if rule.covers(p)]
    if risky:
        yield f"{rule.ports()} open to the internet include high-risk ports {risky}"


# --- ELB ------------------------------------------------------------------


def _is_alb(props: Props) -> bool:
    return props.get("loadBalancerType", "application") == "application"


def _http_redirects_to_https(props: Props) -> Iterable[str]:
    if props.get("protocol") != "HTTP":
        return
    for action in props.get("defaultActions") or []:
        redirect = action.get("redirect") or {}
        if action.get("type") != "redirect" or redirect.get("protocol") != "HTTPS":
            yield "an HTTP listener may only redirect to HTTPS"


def _drops_invalid_headers(props: Props) -> Iterable[str]:
    if _is_alb(props) and not _is_true(props.get("dropInvalidHeaderFields")):
        yield "dropInvalidHeaderFields must be true"


def _access_logs(props: Props) -> Iterable[str]:
    logs = props.get("accessLogs") or {}
    if not (_is_true(logs.get("enabled")) and logs.get("bucket")):
        yield "accessLogs must be enabled with a bucket"


def _lb_deletion_protection(props: Props) -> Iterable[str]:
    if not _is_true(props.get("enableDeletionProtection")):
        yield "enableDeletionProtection must be true"


def _lb_multi_zone(props: Props) -> Iterable[str]:
    zones = len(props.get("subnets") or []) or len(props.get("subnetMappings") or [])
    if zones < 2:
        yield f"the load balancer spans {zones} subnet(s); it needs at least 2 zones"


def _recommended_tls_policy(props: Props) -> Iterable[str]:
    if props.get("protocol") in ("HTTPS", "TLS"):
        policy = props.get("sslPolicy")
        if policy not in ALLOWED_TLS_POLICIES:
            yield f"sslPolicy {policy!r} is not one of the allowed TLS 1.2+/1.3 policies"


def _encrypted_listener(props: Props) -> Iterable[str]:
    protocol = props.get("protocol")
    if protocol in ("HTTPS", "TLS"):
        return
    if protocol == "HTTP" and not list(_http_redirects_to_https(props)):
        return  # a pure redirect carries no data
    yield f"listener protocol {protocol!r} does not encrypt data in transit"


# --- ElastiCache -----------------------------------------------------------


def _cache_at_rest(props: Props) -> Iterable[str]:
    if not _is_true(props.get("atRestEncryptionEnabled")):
        yield "atRestEncryptionEnabled must be true"


def _cache_in_transit(props: Props) -> Iterable[str]:
    if not _is_true(props.get("transitEncryptionEnabled")):
        yield "transitEncryptionEnabled must be true"


def _cache_failover(props: Props) -> Iterable[str]:
    if not _is_true(props.get("automaticFailoverEnabled")):
        yield "automaticFailoverEnabled must be true"


RESOURCE_CONTROLS: tuple[Control, ...] = (
    Control(
        "RDS.2",
        "RDS instances are not publicly accessible",
        (DB_INSTANCE,),
        _on_props(_rds_not_public),
    ),
    Control(
        "RDS.3", "RDS instances encrypt storage at rest", (DB_INSTANCE,), _on_props(_rds_encrypted)
    ),
    Control(
        "RDS.5", "RDS instances use multiple zones", (DB_INSTANCE,), _on_props(_rds_multi_az), True
    ),
    Control(
        "RDS.8",
        "RDS instances have deletion protection",
        (DB_INSTANCE,),
        _on_props(_rds_deletion_protection),
        True,
    ),
    Control(
        "RDS.11", "RDS instances keep automatic backups", (DB_INSTANCE,), _on_props(_rds_backups)
    ),
    Control(
        "RDS.13",
        "RDS minor version upgrades are automatic",
        (DB_INSTANCE,),
        _on_props(_rds_minor_upgrades),
    ),
    Control(
        "RDS.23",
        "RDS instances use a non-default port",
        (DB_INSTANCE,),
        _on_props(_rds_non_default_port),
    ),
    Control(
        "EC2.2",
        "the VPC default security group allows no traffic",
        (DEFAULT_SG,),
        _on_props(_default_sg_closed),
    ),
    Control(
        "EC2.3", "EBS volumes are encrypted", (INSTANCE, LAUNCH_TEMPLATE), _on_props(_ebs_encrypted)
    ),
    Control(
        "EC2.7",
        "EBS encryption by default is on",
        (EBS_DEFAULT_ENCRYPTION,),
        _on_props(_ebs_encryption_by_default),
    ),
    Control("EC2.8", "instances require IMDSv2", (INSTANCE, LAUNCH_TEMPLATE), _on_props(_imdsv2)),
    Control(
        "EC2.9",
        "instances have no public IPv4 address",
        (INSTANCE, LAUNCH_TEMPLATE),
        _on_props(_no_public_ip),
    ),
    Control(
        "EC2.13",
        "no SSH (22) from the internet",
        SG_RULE_TYPES,
        _world_ingress_check(_no_world_ssh),
    ),
    Control(
        "EC2.15",
        "subnets do not assign public IPs",
        (SUBNET,),
        _on_props(_subnet_no_auto_public_ip),
    ),
    Control(
        "EC2.18",
        "only authorized ports open to the internet",
        SG_RULE_TYPES,
        _world_ingress_check(_only_authorized_world_ports),
    ),
    Control(
        "EC2.19",
        "no high-risk ports open to the internet",
        SG_RULE_TYPES,
        _world_ingress_check(_no_world_high_risk),
    ),
    Control(
        "ELB.1",
        "HTTP listeners redirect to HTTPS",
        (LISTENER,),
        _on_props(_http_redirects_to_https),
    ),
    Control(
        "ELB.4",
        "ALBs drop invalid HTTP headers",
        (LOAD_BALANCER,),
        _on_props(_drops_invalid_headers),
    ),
    Control("ELB.5", "load balancers write access logs", (LOAD_BALANCER,), _on_props(_access_logs)),
    Control(
        "ELB.6",
        "load balancers have deletion protection",
        (LOAD_BALANCER,),
        _on_props(_lb_deletion_protection),
        True,
    ),
    Control(
        "ELB.13", "load balancers span multiple zones", (LOAD_BALANCER,), _on_props(_lb_multi_zone)
    ),
    Control(
        "ELB.17",
        "listeners use a recommended TLS policy",
        (LISTENER,),
        _on_props(_recommended_tls_policy),
    ),
    Control(
        "ELB.18", "listeners encrypt data in transit", (LISTENER,), _on_props(_encrypted_listener)
    ),
    Control(
        "ElastiCache.4",
        "caches encrypt data at rest",
        (REPLICATION_GROUP,),
        _on_props(_cache_at_rest),
    ),
    Control(
        "ElastiCache.5",
        "caches encrypt data in transit",
        (REPLICATION_GROUP,),
        _on_props(_cache_in_transit),
    ),
    Control(
        "ElastiCache.3",
        "caches fail over automatically",
        (REPLICATION_GROUP,),
        _on_props(_cache_failover),
    ),
)


# --- controls across resources ---------------------------------------------


def _references(resource: Any, prop: str, target: Any, target_prop: str) -> bool:
    """Does `resource.prop` point at `target`? By dependency (preview) or by value (up)."""
    deps = (resource.property_dependencies or {}).get(prop) or []
    if any(dep.urn == target.urn for dep in deps):
        return True
    value = resource.props.get(prop)
    return value is not None and value == target.props.get(target_prop)


@dataclass(frozen=True)
class StackControl:
    """A Security Hub control that needs to see two resources together."""

    control_id: str
    title: str
    subject_type: str  # every resource of this type needs...
    companion_type: str  # ...one resource of this type...
    companion_prop: str  # ...whose property points at it
    subject_prop: str  # (the subject's property it matches by value)

    @property
    def policy_name(self) -> str:
        return "aws-" + self.control_id.lower().replace(".", "-")

    @property
    def resource_types(self) -> tuple[str, ...]:
        return (self.subject_type,)

    def validate(self, args: StackValidationArgs, report_violation: ReportViolation) -> None:
        companions = [r for r in args.resources if r.resource_type == self.companion_type]
        for subject in args.resources:
            if subject.resource_type != self.subject_type:
                continue
            if self.subject_type == LOAD_BALANCER and not _is_alb(subject.props):
                continue
            if not any(
                _references(c, self.companion_prop, subject, self.subject_prop) for c in companions
            ):
                report_violation(
                    f"{self.control_id} {self.title}: {subject.name} has no "
                    f"{self.companion_type.split(':')[-1]}",
                    subject.urn,
                )

    def policy(self) -> StackValidationPolicy:
        return StackValidationPolicy(
            name=self.policy_name,
            description=f"AWS Security Hub {self.control_id}: {self.title}",
            validate=self.validate,
            enforcement_level=EnforcementLevel.MANDATORY,
        )


STACK_CONTROLS: tuple[StackControl, ...] = (
    StackControl("EC2.6", "VPCs log their flows", VPC, FLOW_LOG, "vpcId", "id"),
    StackControl(
        "ELB.16",
        "ALBs are behind an AWS WAF web ACL",
        LOAD_BALANCER,
        WEB_ACL_ASSOCIATION,
        "resourceArn",
        "arn",
    ),
)


# --- the shop's own -----------------------------------------------------------

METRICS_PATH = "/metrics"
METRICS_POLICY_NAME = "shop-alb-refuses-metrics"


def _refuses_metrics(props: Props) -> bool:
    """A rule answering /metrics with a 4XX for any source: one path condition, a fixed response."""
    conditions = props.get("conditions") or []
    actions = props.get("actions") or []
    if len(conditions) != 1 or len(actions) != 1:
        return False
    paths = (conditions[0].get("pathPattern") or {}).get("values") or []
    response = actions[0].get("fixedResponse") or {}
    return (
        METRICS_PATH in paths
        and actions[0].get("type") == "fixed-response"
        and str(response.get("statusCode", "")).startswith("4")
    )


def validate_alb_refuses_metrics(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    listeners = [r for r in args.resources if r.resource_type == LISTENER]
    rules = [r for r in args.resources if r.resource_type == LISTENER_RULE]
    for lb in args.resources:
        if lb.resource_type != LOAD_BALANCER or not _is_alb(lb.props):
            continue
        if _is_true(lb.props.get("internal")):
            continue
        for listener in listeners:
            if listener.props.get("protocol") != "HTTPS":
                continue
            if not _references(listener, "loadBalancerArn", lb, "arn"):
                continue
            if not any(
                _references(rule, "listenerArn", listener, "arn") and _refuses_metrics(rule.props)
                for rule in rules
            ):
                report_violation(
                    f"{lb.name} is internet-facing and its HTTPS listener {listener.name} has "
                    f"no rule refusing {METRICS_PATH} to every source",
                    listener.urn,
                )


def alb_refuses_metrics_policy() -> StackValidationPolicy:
    return StackValidationPolicy(
        name=METRICS_POLICY_NAME,
        description="an internet-facing ALB's HTTPS listener refuses /metrics to every source",
        validate=validate_alb_refuses_metrics,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def all_policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    return [
        *(c.policy() for c in RESOURCE_CONTROLS),
        *(c.policy() for c in STACK_CONTROLS),
        alb_refuses_metrics_policy(),
    ]
