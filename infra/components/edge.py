"""Edge: the internet-facing Application Load Balancer in the DMZ, and its WAF.

HTTPS with an ACM certificate (DNS-validated in the stack's Route 53 zone) and
an explicit TLS 1.2/1.3 policy; HTTP only redirects to HTTPS; invalid headers
are dropped; access logs go to the encrypted log bucket; a WAF web ACL with
AWS managed rule groups and a per-IP rate limit sits in front.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components import tags

# AWS's TLS 1.3 + 1.2 policy with forward-secret ciphers only (AWS Security Hub ELB.17).
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-Res-2021-06"
HEALTH_CHECK_PATH = "/readyz"  # the app's readiness endpoint (docs/contracts.md)

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
            protocol="HTTP",
            target_type="instance",
            vpc_id=args.vpc_id,
            deregistration_delay=30,
            health_check={
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
        aws.lb.Listener(
            f"{name}-https",
            load_balancer_arn=load_balancer.arn,
            port=args.https_port,
            protocol="HTTPS",
            ssl_policy=TLS_POLICY,
            certificate_arn=validated.certificate_arn,
            default_actions=[{"type": "forward", "target_group_arn": target_group.arn}],
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

        web_acl = aws.wafv2.WebAcl(
            f"{name}-waf",
            scope="REGIONAL",
            default_action={"allow": {}},
            rules=[
                *(
                    {
                        "name": group,
                        "priority": priority,
                        "override_action": {"none": {}},
                        "statement": {
                            "managed_rule_group_statement": {"vendor_name": "AWS", "name": group}
                        },
                        "visibility_config": _visibility(group),
                    }
                    for priority, group in enumerate(MANAGED_RULE_GROUPS, start=1)
                ),
                {
                    "name": "rate-limit-per-ip",
                    "priority": len(MANAGED_RULE_GROUPS) + 1,
                    "action": {"block": {}},
                    "statement": {
                        "rate_based_statement": {
                            "limit": args.waf_rate_limit_per_5min,
                            "aggregate_key_type": "IP",
                        }
                    },
                    "visibility_config": _visibility("rate-limit-per-ip"),
                },
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
