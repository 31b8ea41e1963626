"""The stack's configuration, read once from Pulumi config and checked.

Stacks (Pulumi.<stack>.yaml) differ only in these values. A missing or
out-of-range value stops the program with a message naming the key.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi

from topology import Topology

MIN_BACKUP_RETENTION_DAYS = 7  # AWS Security Hub RDS.11
# An ALB rule takes at most 3 values per condition and 5 in all, so the edge spreads the
# operator networks over several allow rules (components/edge.py); 5 networks keep that to two
# rules per admin path. More operator networks belong behind a VPN (or a WAF IP set).
MAX_ADMIN_CIDRS = 5
# Wider than this is not an operator network; 0.0.0.0/0 would undo the allow-list.
MIN_ADMIN_PREFIX = 8


class SettingsError(ValueError):
    """A stack config value is missing or wrong."""


@dataclass(frozen=True)
class AppSettings:
    instance_type: str
    ami_id: str
    min_size: int
    max_size: int
    desired_capacity: int
    volume_gb: int


@dataclass(frozen=True)
class DataSettings:
    db_instance_class: str
    db_engine_version: str
    db_allocated_storage_gb: int
    db_max_allocated_storage_gb: int
    db_backup_retention_days: int
    db_read_replicas: int
    cache_node_type: str


@dataclass(frozen=True)
class StackSettings:
    project: str
    stack: str
    region: str
    zone_letters: tuple[str, ...]
    vpc_cidr: str
    nat_per_zone: bool
    deletion_protection: bool
    domain_name: str
    hosted_zone_id: str
    waf_rate_limit_per_5min: int
    admin_cidrs: tuple[str, ...]
    log_retention_days: int
    app: AppSettings
    data: DataSettings
    monitoring_instance_type: str
    alert_email: str | None
    cache_auth_token: pulumi.Output[str]
    pager_webhook_url: pulumi.Output[str] | None

    @property
    def zones(self) -> list[str]:
        """AWS availability zone names of the zones this stack uses."""
        return [f"{self.region}{letter}" for letter in self.zone_letters]


def _require(cfg: pulumi.Config, key: str) -> str:
    value = cfg.get(key)
    if not value:
        raise SettingsError(
            f"missing config {cfg.name}:{key} (set it with `pulumi config set {key} <value>`)"
        )
    return value


def _int(cfg: pulumi.Config, key: str, low: int, high: int) -> int:
    raw = _require(cfg, key)
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"config {cfg.name}:{key} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"config {cfg.name}:{key} must be in [{low}, {high}], got {value}")
    return value


def _bool(cfg: pulumi.Config, key: str) -> bool:
    raw = _require(cfg, key).lower()
    if raw not in ("true", "false"):
        raise SettingsError(f"config {cfg.name}:{key} must be true or false, got {raw!r}")
    return raw == "true"


def _admin_cidrs(cfg: pulumi.Config, key: str) -> tuple[str, ...]:
    """The operator networks allowed to reach the admin paths: 1 to 5 IPv4 CIDRs, none too wide."""
    example = f"pulumi config set --path '{key}[0]' 203.0.113.0/24"
    if not cfg.get(key):
        raise SettingsError(f"missing config {cfg.name}:{key} (set it with `{example}`)")
    try:
        raw = cfg.get_object(key)
    except pulumi.ConfigTypeError:
        raise SettingsError(
            f"config {cfg.name}:{key} must be a list of IPv4 CIDRs (set it with `{example}`)"
        ) from None
    if not isinstance(raw, list) or not raw:
        raise SettingsError(f"config {cfg.name}:{key} must be a non-empty list of IPv4 CIDRs")
    if len(raw) > MAX_ADMIN_CIDRS:
        raise SettingsError(
            f"config {cfg.name}:{key} has {len(raw)} networks, at most {MAX_ADMIN_CIDRS} fit the "
            "load balancer's rules; put operators behind fewer networks (e.g. a VPN)"
        )
    cidrs = []
    for item in raw:
        try:
            network = ipaddress.IPv4Network(str(item))
        except ValueError as exc:
            raise SettingsError(
                f"config {cfg.name}:{key} entry {item!r} is not an IPv4 network: {exc}"
            ) from None
        if network.prefixlen < MIN_ADMIN_PREFIX:
            raise SettingsError(
                f"config {cfg.name}:{key} entry {item} is wider than /{MIN_ADMIN_PREFIX}: the "
                "admin paths are for operator networks, not the internet"
            )
        if str(network) not in cidrs:
            cidrs.append(str(network))
    return tuple(cidrs)


def load(topo: Topology) -> StackSettings:
    cfg = pulumi.Config()
    region = _require(pulumi.Config("aws"), "region")
    zone_count = _int(cfg, "zoneCount", 2, len(topo.zones))
    vpc_cidr = _require(cfg, "vpcCidr")
    try:
        network = ipaddress.IPv4Network(vpc_cidr)
    except ValueError as exc:
        raise SettingsError(f"config {cfg.name}:vpcCidr is not an IPv4 network: {exc}") from None
    if not 16 <= network.prefixlen <= 20:
        raise SettingsError(f"config {cfg.name}:vpcCidr must be a /16 to /20, got {vpc_cidr}")

    app = AppSettings(
        instance_type=_require(cfg, "appInstanceType"),
        ami_id=_require(cfg, "appAmiId"),
        min_size=_int(cfg, "appMinSize", zone_count, 100),
        max_size=_int(cfg, "appMaxSize", zone_count, 100),
        desired_capacity=_int(cfg, "appDesiredCapacity", zone_count, 100),
        volume_gb=_int(cfg, "appVolumeGb", 8, 1000),
    )
    if not app.min_size <= app.desired_capacity <= app.max_size:
        raise SettingsError(
            f"config {cfg.name}: need appMinSize <= appDesiredCapacity <= appMaxSize, got "
            f"{app.min_size} <= {app.desired_capacity} <= {app.max_size}"
        )
    data = DataSettings(
        db_instance_class=_require(cfg, "dbInstanceClass"),
        db_engine_version=_require(cfg, "dbEngineVersion"),
        db_allocated_storage_gb=_int(cfg, "dbAllocatedStorageGb", 20, 65536),
        db_max_allocated_storage_gb=_int(cfg, "dbMaxAllocatedStorageGb", 20, 65536),
        db_backup_retention_days=_int(cfg, "dbBackupRetentionDays", MIN_BACKUP_RETENTION_DAYS, 35),
        # replicas are placed in the zones the primary pair does not use
        db_read_replicas=_int(cfg, "dbReadReplicas", 0, zone_count - 2),
        cache_node_type=_require(cfg, "cacheNodeType"),
    )
    if data.db_max_allocated_storage_gb < data.db_allocated_storage_gb:
        raise SettingsError(
            f"config {cfg.name}:dbMaxAllocatedStorageGb must be >= dbAllocatedStorageGb"
        )
    return StackSettings(
        project=pulumi.get_project(),
        stack=pulumi.get_stack(),
        region=region,
        zone_letters=tuple(topo.zones[:zone_count]),
        vpc_cidr=vpc_cidr,
        nat_per_zone=_bool(cfg, "natPerZone"),
        deletion_protection=_bool(cfg, "deletionProtection"),
        domain_name=_require(cfg, "domainName"),
        hosted_zone_id=_require(cfg, "hostedZoneId"),
        waf_rate_limit_per_5min=_int(cfg, "wafRateLimitPer5Min", 100, 2_000_000_000),
        admin_cidrs=_admin_cidrs(cfg, "adminCidrs"),
        log_retention_days=_int(cfg, "logRetentionDays", 1, 3650),
        app=app,
        data=data,
        monitoring_instance_type=_require(cfg, "monitoringInstanceType"),
        alert_email=cfg.get("alertEmail"),
        cache_auth_token=cfg.require_secret("cacheAuthToken"),
        pager_webhook_url=cfg.get_secret("pagerWebhookUrl"),
    )
