"""AWS Security Hub controls, run as the CrossGuard validators on every stack's resources.

Each control is tested twice: on the mocked program of every stack (no
violation, and at least one resource it applies to), and on a known-bad
resource (it must report one), so a validator that can never fail is caught.
"""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs

from infra.policies import controls
from infra.policies.controls import RESOURCE_CONTROLS, STACK_CONTROLS, Control, StackControl
from tests.infra.model import StackModel

CONTROL_IDS = [c.control_id for c in RESOURCE_CONTROLS]
STACK_CONTROL_IDS = [c.control_id for c in STACK_CONTROLS]


def by_id(control_id: str) -> Control:
    return next(c for c in RESOURCE_CONTROLS if c.control_id == control_id)


def validate(control: Control, resource_type: str, props: dict[str, Any], urn: str) -> list[str]:
    violations: list[str] = []
    args = ResourceValidationArgs(resource_type, props, urn, "r", None, None)  # type: ignore[arg-type]
    control.policy().validate(args, lambda message, _urn=None: violations.append(message))
    return violations


def policy_resources(model: StackModel) -> list[PolicyResource]:
    """The stack's resources as a policy engine hands them to stack validations."""
    made = {
        r.urn: PolicyResource(r.type, r.state or r.inputs, r.urn, r.name, None, None, None, [], {})  # type: ignore[arg-type]
        for r in model.resources
    }
    for r in model.resources:
        made[r.urn].property_dependencies = {
            key: [made[u] for u in urns if u in made]
            for key, urns in r.property_dependencies.items()
        }
    return list(made.values())


@pytest.mark.parametrize("control_id", CONTROL_IDS)
def test_security_hub_control(model: StackModel, control_id: str) -> None:
    control = by_id(control_id)
    applicable = [r for r in model.custom_resources() if r.type in control.resource_types]
    assert applicable, f"{control_id}: no resource in {model.stack} to check"
    violations = [
        f"{r.name}: {v}" for r in applicable for v in validate(control, r.type, r.inputs, r.urn)
    ]
    assert not violations, violations


@pytest.mark.parametrize("control_id", STACK_CONTROL_IDS)
def test_security_hub_stack_control(model: StackModel, control_id: str) -> None:
    control = next(c for c in STACK_CONTROLS if c.control_id == control_id)
    resources = policy_resources(model)
    assert any(r.resource_type == control.subject_type for r in resources)
    violations: list[str] = []
    control.policy().validate(
        StackValidationArgs(resources), lambda message, _urn=None: violations.append(message)
    )
    assert not violations, violations


PROD = "urn:pulumi:prod::shop-ops::aws:x::r"
DEV = "urn:pulumi:dev::shop-ops::aws:x::r"
DB = controls.DB_INSTANCE
GOOD_DB = {
    "engine": "postgres",
    "port": 5433,
    "publiclyAccessible": False,
    "storageEncrypted": True,
    "multiAz": True,
    "deletionProtection": True,
    "backupRetentionPeriod": 7,
    "autoMinorVersionUpgrade": True,
}
HTTPS_LISTENER = {"protocol": "HTTPS", "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-Res-2021-06"}
REDIRECT = {"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443"}}
GOOD_LB = {
    "loadBalancerType": "application",
    "subnets": ["s1", "s2"],
    "dropInvalidHeaderFields": True,
    "enableDeletionProtection": True,
    "accessLogs": {"bucket": "logs", "enabled": True},
}
SG_RULE = controls.SG_INGRESS_RULE
WORLD_SSH = {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "tcp", "fromPort": 22, "toPort": 22}

# (control, resource type, bad inputs, urn): each must be reported.
BAD_EXAMPLES = [
    ("RDS.2", DB, {**GOOD_DB, "publiclyAccessible": True}, DEV),
    ("RDS.3", DB, {**GOOD_DB, "storageEncrypted": False}, DEV),
    ("RDS.5", DB, {**GOOD_DB, "multiAz": False}, PROD),
    ("RDS.8", DB, {**GOOD_DB, "deletionProtection": False}, PROD),
    ("RDS.11", DB, {**GOOD_DB, "backupRetentionPeriod": 3}, DEV),
    ("RDS.13", DB, {**GOOD_DB, "autoMinorVersionUpgrade": False}, DEV),
    ("RDS.23", DB, {**GOOD_DB, "port": 5432}, DEV),
    ("EC2.2", controls.DEFAULT_SG, {"ingress": [{"protocol": "-1", "self": True}]}, DEV),
    (
        "EC2.3",
        controls.LAUNCH_TEMPLATE,
        {"blockDeviceMappings": [{"ebs": {"encrypted": "false"}}]},
        DEV,
    ),
    ("EC2.7", controls.EBS_DEFAULT_ENCRYPTION, {"enabled": False}, DEV),
    ("EC2.8", controls.LAUNCH_TEMPLATE, {"metadataOptions": {"httpTokens": "optional"}}, DEV),
    ("EC2.9", controls.INSTANCE, {"associatePublicIpAddress": True}, DEV),
    ("EC2.13", SG_RULE, WORLD_SSH, DEV),
    ("EC2.15", controls.SUBNET, {"mapPublicIpOnLaunch": True}, DEV),
    ("EC2.18", SG_RULE, {**WORLD_SSH, "fromPort": 8000, "toPort": 8000}, DEV),
    (
        "EC2.19",
        controls.SECURITY_GROUP,
        {"ingress": [{"protocol": "-1", "cidrBlocks": ["0.0.0.0/0"]}]},
        DEV,
    ),
    (
        "ELB.1",
        controls.LISTENER,
        {"protocol": "HTTP", "defaultActions": [{"type": "forward"}]},
        DEV,
    ),
    ("ELB.4", controls.LOAD_BALANCER, {**GOOD_LB, "dropInvalidHeaderFields": False}, DEV),
    ("ELB.5", controls.LOAD_BALANCER, {**GOOD_LB, "accessLogs": {"enabled": False}}, DEV),
    ("ELB.6", controls.LOAD_BALANCER, {**GOOD_LB, "enableDeletionProtection": False}, PROD),
    ("ELB.13", controls.LOAD_BALANCER, {**GOOD_LB, "subnets": ["s1"]}, DEV),
    (
        "ELB.17",
        controls.LISTENER,
        {**HTTPS_LISTENER, "sslPolicy": "ELBSecurityPolicy-2016-08"},
        DEV,
    ),
    (
        "ELB.18",
        controls.LISTENER,
        {"protocol": "HTTP", "defaultActions": [{"type": "forward"}]},
        DEV,
    ),
    ("ElastiCache.3", controls.REPLICATION_GROUP, {"automaticFailoverEnabled": False}, DEV),
    ("ElastiCache.4", controls.REPLICATION_GROUP, {"atRestEncryptionEnabled": False}, DEV),
    ("ElastiCache.5", controls.REPLICATION_GROUP, {"transitEncryptionEnabled": False}, DEV),
]


def test_every_control_has_a_bad_example() -> None:
    assert {example[0] for example in BAD_EXAMPLES} == set(CONTROL_IDS)


@pytest.mark.parametrize(("control_id", "resource_type", "props", "urn"), BAD_EXAMPLES)
def test_control_reports_a_bad_resource(control_id, resource_type, props, urn) -> None:
    assert validate(by_id(control_id), resource_type, props, urn)


@pytest.mark.parametrize(
    ("control_id", "resource_type", "props"),
    [
        ("RDS.2", DB, GOOD_DB),
        ("ELB.1", controls.LISTENER, {"protocol": "HTTP", "defaultActions": [REDIRECT]}),
        ("ELB.18", controls.LISTENER, {"protocol": "HTTP", "defaultActions": [REDIRECT]}),
        ("ELB.17", controls.LISTENER, HTTPS_LISTENER),
        ("EC2.18", SG_RULE, {**WORLD_SSH, "fromPort": 443, "toPort": 443}),
    ],
)
def test_control_passes_a_good_resource(control_id, resource_type, props) -> None:
    assert validate(by_id(control_id), resource_type, props, DEV) == []


def test_production_controls_apply_to_production_stacks_only() -> None:
    lax = {**GOOD_DB, "deletionProtection": False}
    assert validate(by_id("RDS.8"), DB, lax, DEV) == []
    assert validate(by_id("RDS.8"), DB, lax, PROD)


def test_stack_controls_report_a_missing_companion() -> None:
    vpc = PolicyResource(
        controls.VPC, {}, "urn:pulumi:dev::p::aws:ec2/vpc:Vpc::v", "v", None, None, None, [], {}
    )  # type: ignore[arg-type]
    alb = PolicyResource(
        controls.LOAD_BALANCER,
        {"loadBalancerType": "application"},
        "urn:lb",
        "lb",
        None,
        None,
        None,
        [],
        {},
    )  # type: ignore[arg-type]
    for control, subject in zip(STACK_CONTROLS, (vpc, alb), strict=True):
        assert isinstance(control, StackControl)
        found: list[str] = []
        control.policy().validate(StackValidationArgs([subject]), _collector(found))
        assert found, control.control_id


def _collector(found: list[str]):
    return lambda message, _urn=None: found.append(message)


def _resource(
    resource_type: str, props: dict[str, Any], name: str, **deps: PolicyResource
) -> PolicyResource:
    """A resource whose properties `deps` point at other resources, as in a preview."""
    return PolicyResource(
        resource_type,
        props,
        f"urn:pulumi:dev::shop-ops::{resource_type}::{name}",
        name,
        None,  # type: ignore[arg-type]
        None,
        None,
        [],
        {key: [dep] for key, dep in deps.items()},
    )


METRICS_403 = {
    "conditions": [{"pathPattern": {"values": ["/metrics", "/metrics/*"]}}],
    "actions": [{"type": "fixed-response", "fixedResponse": {"statusCode": "403"}}],
}


def _alb_violations(rule_props: dict[str, Any] | None, internal: bool = False) -> list[str]:
    """The metrics policy on an ALB with an HTTPS listener and, if given, one rule on it."""
    lb = _resource(
        controls.LOAD_BALANCER, {"loadBalancerType": "application", "internal": internal}, "alb"
    )
    listener = _resource(controls.LISTENER, {"protocol": "HTTPS"}, "https", loadBalancerArn=lb)
    resources = [lb, listener]
    if rule_props is not None:
        resources.append(
            _resource(controls.LISTENER_RULE, rule_props, "rule", listenerArn=listener)
        )
    found: list[str] = []
    controls.alb_refuses_metrics_policy().validate(
        StackValidationArgs(resources), _collector(found)
    )
    return found


def test_every_stacks_internet_facing_alb_refuses_metrics_on_https(model: StackModel) -> None:
    resources = policy_resources(model)
    assert any(
        r.resource_type == controls.LOAD_BALANCER and not r.props.get("internal") for r in resources
    )
    found: list[str] = []
    controls.alb_refuses_metrics_policy().validate(
        StackValidationArgs(resources), _collector(found)
    )
    assert not found, found


@pytest.mark.parametrize(
    "rule_props",
    [
        None,
        {**METRICS_403, "actions": [{"type": "forward", "targetGroupArn": "tg"}]},
        {
            **METRICS_403,
            "conditions": [
                *METRICS_403["conditions"],
                {"sourceIp": {"values": ["203.0.113.0/24"]}},
            ],
        },
        {**METRICS_403, "conditions": [{"pathPattern": {"values": ["/api/admin"]}}]},
    ],
    ids=["no rule", "forwarded", "refused to some sources only", "another path"],
)
def test_metrics_policy_reports_an_alb_that_serves_metrics(rule_props) -> None:
    assert _alb_violations(rule_props)


def test_metrics_policy_passes_a_refusal_and_spares_internal_albs() -> None:
    assert _alb_violations(METRICS_403) == []
    assert _alb_violations(None, internal=True) == []
