"""Edge: the internet-facing Application Load Balancer in the DMZ, and its WAF.

HTTPS with an ACM certificate (DNS-validated in the stack's Route 53 zone) and
an explicit TLS 1.2/1.3 policy; HTTP only redirects to HTTPS; invalid headers
are dropped; access logs go to the encrypted log bucket; a WAF web ACL with
AWS managed rule groups and a per-IP rate limit sits in front.

Listener rules keep the shop's operations surface off the internet: `/metrics` is
refused to everyone (Prometheus scrapes the app servers from the monitoring host
inside the VPC), and the admin API and back-office pages are forwarded only from
the stack's operator networks (`adminCidrs`) and refused to everyone else. The
app's own admin role check stays the authority; these rules only shrink who can try.

The ALB matches the path as sent, while the app (uvicorn) percent-decodes it before
routing, so `/%6detrics` passes the listener rules and is served as `/metrics`. The WAF
closes that: its first rules, ahead of the managed groups, match the same paths after
URL_DECODE (and LOWERCASE, and once more after NORMALIZE_PATH) and block `/metrics` for
everyone and the admin paths for every source outside an IP set of `adminCidrs`.

The ALB speaks HTTPS to the app servers too (they serve TLS only, with a certificate
from the deployment's internal CA). The ALB does not validate target certificates (AWS
behaviour): that hop is encrypted, but the target is not authenticated; what makes an
instance a target is the auto scaling group registering it, not its certificate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components import tags

# AWS's TLS 1.3 + 1.2 policy with forward-secret ciphers only (AWS Security Hub ELB.17).
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-Res-2021-06"
HEALTH_CHECK_PATH = "/readyz"  # the app's readiness endpoint (docs/contracts.md)

METRICS_PATHS = ("/metrics", "/metrics/*")
ADMIN_PATH_GROUPS: Mapping[str, tuple[str, ...]] = {
    "api": ("/api/admin", "/api/admin/*"),
    "backoffice": ("/admin", "/admin/*"),
}
# ALB quotas for one listener rule: values in one condition, values over all its conditions.
MAX_CONDITION_VALUES = 3
MAX_RULE_VALUES = 5
# Listener rule priorities, lowest evaluated first. Each admin path group has a block of allow
# priorities, so a longer adminCidrs list adds rules without renumbering the others.
METRICS_PRIORITY = 10
ADMIN_ALLOW_PRIORITY = 100
ADMIN_ALLOW_BLOCK = 10
ADMIN_DENY_PRIORITY = 200
FORBIDDEN = {
    "type": "fixed-response",
    "fixed_response": {
        "content_type": "text/plain",
        "message_body": "forbidden",
        "status_code": "403",
    },
}

# WAF rules on the decoded path. Each view is a chain of text transformations, applied in
# order before matching. "routed" is the path as uvicorn routes it (percent-decoded once;
# lowercased, which only widens the match since the prefixes are lowercase); "normalised"
# also resolves dot segments and repeated slashes, for anything in front of the app that does.
# Both views are checked: normalising alone would let `/api/admin/%2e%2e/x` (normalised
# `/api/x`) past the rule while the app, normalising nothing, still sees it below /api/admin.
WAF_PATH_VIEWS: Mapping[str, tuple[str, ...]] = {
    "routed": ("URL_DECODE", "LOWERCASE"),
    "normalised": ("URL_DECODE", "NORMALIZE_PATH", "LOWERCASE"),
}
# The listener rules' exact paths, i.e. their path patterns without the `/*` ones: a decoded
# path is blocked when it equals one or continues below it (`/api/administrators` does not).
WAF_METRICS_PREFIXES = tuple(p for p in METRICS_PATHS if "*" not in p)
WAF_ADMIN_PREFIXES = tuple(p for ps in ADMIN_PATH_GROUPS.values() for p in ps if "*" not in p)
WAF_METRICS_RULE = "metrics-decoded-path"
WAF_ADMIN_RULE = "admin-decoded-path-outside-operator-networks"

MANAGED_RULE_GROUPS = (
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesSQLiRuleSet",
    "AWSManagedRulesAmazonIpReputationList",
)


@dataclass(frozen=True)
class EdgeArgs:
    project: str
    stack: str
    vpc_id: pulumi.Input[str]
    subnet_ids: list[pulumi.Input[str]]  # the DMZ subnets, one per zone
    security_group_id: pulumi.Input[str]
    log_bucket_name: pulumi.Input[str]
    domain_name: str
    hosted_zone_id: str
    http_port: int
    https_port: int
    app_port: int
    deletion_protection: bool
    waf_rate_limit_per_5min: int
    admin_cidrs: tuple[str, ...]  # operator networks, validated by settings.py


@dataclass(frozen=True)
class RuleSpec:
    """One HTTPS listener rule: these paths, from these sources if any, forwarded or refused."""

    key: str
    priority: int
    paths: tuple[str, ...]
    source_cidrs: tuple[str, ...]
    forward: bool


def listener_rules(admin_cidrs: tuple[str, ...]) -> list[RuleSpec]:
    """The HTTPS listener's rules, within the ALB's per-rule quotas."""
    rules = [RuleSpec("metrics-deny", METRICS_PRIORITY, METRICS_PATHS, (), forward=False)]
    for group_index, (group, paths) in enumerate(ADMIN_PATH_GROUPS.items()):
        per_rule = min(MAX_CONDITION_VALUES, MAX_RULE_VALUES - len(paths))
        chunks = [admin_cidrs[i : i + per_rule] for i in range(0, len(admin_cidrs), per_rule)]
        if len(chunks) > ADMIN_ALLOW_BLOCK:
            raise ValueError(f"{len(admin_cidrs)} admin networks do not fit the allow rules")
        base = ADMIN_ALLOW_PRIORITY + group_index * ADMIN_ALLOW_BLOCK
        rules += [
            RuleSpec(f"admin-{group}-allow-{i}", base + i, paths, chunk, forward=True)
            for i, chunk in enumerate(chunks)
        ]
        rules.append(
            RuleSpec(
                f"admin-{group}-deny", ADMIN_DENY_PRIORITY + group_index, paths, (), forward=False
            )
        )
    return rules


def _decoded_path_under(prefixes: tuple[str, ...]) -> dict[str, object]:
    """A WAF statement: the request path, decoded in every view, is one of `prefixes` or below."""
    return {
        "or_statement": {
            "statements": [
                {
                    "byte_match_statement": {
                        "field_to_match": {"uri_path": {}},
                        "positional_constraint": constraint,
                        "search_string": search,
                        "text_transformations": [
                            {"priority": priority, "type": kind}
                            for priority, kind in enumerate(chain)
                        ],
                    }
                }
                for chain in WAF_PATH_VIEWS.values()
                for prefix in prefixes
                for constraint, search in (("EXACTLY", prefix), ("STARTS_WITH", f"{prefix}/"))
            ]
        }
    }


def waf_path_rules(admin_ip_set_arn: pulumi.Input[str]) -> list[dict[str, object]]:
    """The web ACL's rules on the decoded path, without priorities: they go before all others."""
    return [
        {
            "name": WAF_METRICS_RULE,
            "action": {"block": {}},
            "statement": _decoded_path_under(WAF_METRICS_PREFIXES),
            "visibility_config": _visibility(WAF_METRICS_RULE),
        },
        {
            "name": WAF_ADMIN_RULE,
            "action": {"block": {}},
            "statement": {
                "and_statement": {
                    "statements": [
                        _decoded_path_under(WAF_ADMIN_PREFIXES),
                        {
                            "not_statement": {
                                "statement": {
                                    "ip_set_reference_statement": {"arn": admin_ip_set_arn}
                                }
                            }
                        },
                    ]
                }
            },
            "visibility_config": _visibility(WAF_ADMIN_RULE),
        },
    ]


class Edge(pulumi.ComponentResource):
    load_balancer_arn: pulumi.Output[str]
    dns_name: pulumi.Output[str]
    target_group_arn: pulumi.Output[str]
    url: pulumi.Output[str]

    def __init__(self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("shop:infra:Edge", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tier = "dmz"

        certificate = aws.acm.Certificate(
            f"{name}-cert",
            domain_name=args.domain_name,
            validation_method="DNS",
            tags=tags(args.project, args.stack, tier, "cert"),
            opts=child,
        )
        validation_option = certificate.domain_validation_options[0]
        validation_record = aws.route53.Record(
            f"{name}-cert-validation",
            zone_id=args.hosted_zone_id,
            name=validation_option.resource_record_name,
            type=validation_option.resource_record_type,
            records=[validation_option.resource_record_value],
            ttl=300,
            allow_overwrite=True,
            opts=child,
        )
        validated = aws.acm.CertificateValidation(
            f"{name}-cert-validated",
            certificate_arn=certificate.arn,
            validation_record_fqdns=[validation_record.fqdn],
            opts=child,
        )

        load_balancer = aws.lb.LoadBalancer(
            f"{name}-alb",
            load_balancer_type="application",
            internal=False,
            subnets=args.subnet_ids,
            security_groups=[args.security_group_id],
            drop_invalid_header_fields=True,
            desync_mitigation_mode="strictest",
            enable_deletion_protection=args.deletion_protection,
            enable_http2=True,
            idle_timeout=60,
            access_logs={"bucket": args.log_bucket_name, "prefix": "alb", "enabled": True},
            tags=tags(args.project, args.stack, tier, "alb"),
            opts=child,
        )
        target_group = aws.lb.TargetGroup(
            f"{name}-app-tg",
            port=args.app_port,
            # The app servers serve TLS only. The ALB does not validate target certificates
            # (AWS behaviour), so the internal CA's certificate needs no trust here.
            protocol="HTTPS",
            target_type="instance",
            vpc_id=args.vpc_id,
            deregistration_delay=30,
            health_check={
                "protocol": "HTTPS",
                "path": HEALTH_CHECK_PATH,
                "port": "traffic-port",
                "matcher": "200",
                "interval": 10,
                "healthy_threshold": 2,
                "unhealthy_threshold": 3,
            },
            tags=tags(args.project, args.stack, "app", "app-tg"),
            opts=child,
        )
        https_listener = aws.lb.Listener(
            f"{name}-https",
            load_balancer_arn=load_balancer.arn,
            port=args.https_port,
            protocol="HTTPS",
            ssl_policy=TLS_POLICY,
            certificate_arn=validated.certificate_arn,
            default_actions=[{"type": "forward", "target_group_arn": target_group.arn}],
            opts=child,
        )
        for rule in listener_rules(args.admin_cidrs):
            conditions: list[dict[str, object]] = [{"path_pattern": {"values": list(rule.paths)}}]
            if rule.source_cidrs:
                conditions.append({"source_ip": {"values": list(rule.source_cidrs)}})
            aws.lb.ListenerRule(
                f"{name}-{rule.key}",
                listener_arn=https_listener.arn,
                priority=rule.priority,
                conditions=conditions,
                actions=[
                    {"type": "forward", "target_group_arn": target_group.arn}
                    if rule.forward
                    else FORBIDDEN
                ],
                tags=tags(args.project, args.stack, tier, f"rule-{rule.key}"),
                opts=child,
            )
        aws.lb.Listener(
            f"{name}-http-redirect",
            load_balancer_arn=load_balancer.arn,
            port=args.http_port,
            protocol="HTTP",
            default_actions=[
                {
                    "type": "redirect",
                    "redirect": {
                        "protocol": "HTTPS",
                        "port": str(args.https_port),
                        "status_code": "HTTP_301",
                    },
                }
            ],
            opts=child,
        )

        admin_networks = aws.wafv2.IpSet(
            f"{name}-admin-networks",
            scope="REGIONAL",
            ip_address_version="IPV4",
            addresses=list(args.admin_cidrs),
            description="operator networks allowed on the admin paths, from adminCidrs",
            tags=tags(args.project, args.stack, tier, "admin-networks"),
            opts=child,
        )
        # Evaluated by ascending priority: the decoded-path rules first, so the managed groups
        # never see what they block; then the managed groups; the rate limit last.
        waf_rules: list[dict[str, object]] = [
            *waf_path_rules(admin_networks.arn),
            *(
                {
                    "name": group,
                    "override_action": {"none": {}},
                    "statement": {
                        "managed_rule_group_statement": {"vendor_name": "AWS", "name": group}
                    },
                    "visibility_config": _visibility(group),
                }
                for group in MANAGED_RULE_GROUPS
            ),
            {
                "name": "rate-limit-per-ip",
                "action": {"block": {}},
                "statement": {
                    "rate_based_statement": {
                        "limit": args.waf_rate_limit_per_5min,
                        "aggregate_key_type": "IP",
                    }
                },
                "visibility_config": _visibility("rate-limit-per-ip"),
            },
        ]
        web_acl = aws.wafv2.WebAcl(
            f"{name}-waf",
            scope="REGIONAL",
            default_action={"allow": {}},
            rules=[
                {**rule, "priority": priority} for priority, rule in enumerate(waf_rules, start=1)
            ],
            visibility_config=_visibility(f"{args.project}-{args.stack}-waf"),
            tags=tags(args.project, args.stack, tier, "waf"),
            opts=child,
        )
        aws.wafv2.WebAclAssociation(
            f"{name}-waf-alb",
            resource_arn=load_balancer.arn,
            web_acl_arn=web_acl.arn,
            opts=child,
        )
        aws.route53.Record(
            f"{name}-alias",
            zone_id=args.hosted_zone_id,
            name=args.domain_name,
            type="A",
            aliases=[
                {
                    "name": load_balancer.dns_name,
                    "zone_id": load_balancer.zone_id,
                    "evaluate_target_health": True,
                }
            ],
            opts=child,
        )

        self.load_balancer_arn = load_balancer.arn
        self.dns_name = load_balancer.dns_name
        self.target_group_arn = target_group.arn
        self.url = pulumi.Output.from_input(f"https://{args.domain_name}/")
        self.register_outputs({"dns_name": self.dns_name, "url": self.url})


def _visibility(metric: str) -> dict[str, object]:
    return {
        "cloudwatch_metrics_enabled": True,
        "sampled_requests_enabled": True,
        "metric_name": metric,
    }
