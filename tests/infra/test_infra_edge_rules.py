"""The HTTPS listener's rules: what the ALB answers a request, by path and source address.

The mocks cannot run an ALB, so `answer` evaluates the listener the way one does
(rules by ascending priority, first match wins, the default action last), and each
test states a request and the answer the internet or an operator must get. The
quota test stands in for the API's own checks, which no mock applies.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

import topology
from tests.infra.model import STACKS, Resource, StackModel, load_dev_with_admin_cidrs

LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"
ADMIN_PATHS = frozenset({"/api/admin", "/api/admin/*", "/admin", "/admin/*"})
METRICS_REQUESTS = ("/metrics", "/metrics/", "/metrics/anything")
ADMIN_REQUESTS = (
    "/api/admin",
    "/api/admin/",
    "/api/admin/products/SKU-1/stock",
    "/admin",
    "/admin/x",
)
SHOP_REQUESTS = ("/", "/api/products", "/api/administrators", "/administration", "/metricsx")
INTERNET = ("8.8.8.8", "1.1.1.1")
FIVE_NETWORKS_CASE = "dev with five operator networks"
FIVE_NETWORKS = (
    "192.0.2.0/25",
    "192.0.2.128/26",
    "198.51.100.0/24",
    "203.0.113.0/25",
    "203.0.113.200/32",
)
# ALB quotas on one listener rule, which the API enforces and the mocks do not.
ALB_VALUES_PER_CONDITION = 3
ALB_VALUES_PER_RULE = 5
ALB_WILDCARDS_PER_RULE = 5
ALB_MAX_PRIORITY = 50_000


def https_listener(model: StackModel) -> Resource:
    https = topology.load().port("https")
    (listener,) = [
        x for x in model.of_type("aws:lb/listener:Listener") if x.inputs["port"] == https
    ]
    return listener


def rules(model: StackModel) -> list[Resource]:
    """The HTTPS listener's rules in the order the ALB evaluates them."""
    arn = https_listener(model).state["arn"]
    on_listener = [r for r in model.of_type(LISTENER_RULE) if r.inputs["listenerArn"] == arn]
    return sorted(on_listener, key=lambda r: r.inputs["priority"])


def _path_matches(pattern: str, path: str) -> bool:
    """ALB path patterns: case-sensitive, `*` any run of characters, `?` exactly one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, path) is not None


def _condition_holds(condition: dict[str, Any], path: str, source_ip: str) -> bool:
    if "pathPattern" in condition:
        return any(_path_matches(p, path) for p in condition["pathPattern"]["values"])
    if "sourceIp" in condition:
        address = ipaddress.IPv4Address(source_ip)
        return any(address in ipaddress.IPv4Network(c) for c in condition["sourceIp"]["values"])
    raise AssertionError(f"the evaluator does not know the condition {condition}")


def answer(model: StackModel, path: str, source_ip: str) -> dict[str, Any]:
    """The action the HTTPS listener takes on a request for `path` from `source_ip`."""
    for rule in rules(model):
        if all(_condition_holds(c, path, source_ip) for c in rule.inputs["conditions"]):
            (action,) = rule.inputs["actions"]
            return action
    (default,) = https_listener(model).inputs["defaultActions"]
    return default


def admin_networks(model: StackModel) -> list[str]:
    return json.loads(model.config_value("adminCidrs"))


def inside(network: str) -> Iterator[str]:
    net = ipaddress.IPv4Network(network)
    yield str(net.network_address)
    yield str(net.broadcast_address)


def outside(networks: list[str]) -> Iterator[str]:
    """The internet, and the address just past each operator network (unless it is another)."""
    nets = [ipaddress.IPv4Network(n) for n in networks]
    for candidate in [*INTERNET, *(str(n.broadcast_address + 1) for n in nets)]:
        if not any(ipaddress.IPv4Address(candidate) in n for n in nets):
            yield candidate


def forward_to_app(model: StackModel) -> dict[str, Any]:
    target_group = model.one("aws:lb/targetGroup:TargetGroup")
    return {"type": "forward", "targetGroupArn": target_group.state["arn"]}


def assert_forbidden(action: dict[str, Any], request: str) -> None:
    assert action["type"] == "fixed-response", f"{request}: {action}"
    response = action["fixedResponse"]
    assert response["statusCode"] == "403", request
    assert response["contentType"] == "text/plain", request
    assert response.get("messageBody"), request


@pytest.fixture(params=[*STACKS, FIVE_NETWORKS_CASE])
def edge_model(request: pytest.FixtureRequest, models: dict[str, StackModel]) -> StackModel:
    """Every stack, and dev with the most operator networks settings.py allows (they need
    several allow rules)."""
    if request.param == FIVE_NETWORKS_CASE:
        return load_dev_with_admin_cidrs(FIVE_NETWORKS)
    return models[request.param]


def test_metrics_is_refused_to_everyone_on_the_https_listener(edge_model: StackModel) -> None:
    model = edge_model
    refusing = [
        r
        for r in rules(model)
        if r.inputs["conditions"] == [{"pathPattern": {"values": ["/metrics", "/metrics/*"]}}]
    ]
    assert len(refusing) == 1, "the HTTPS listener has no rule for /metrics from any source"
    assert_forbidden(refusing[0].inputs["actions"][0], "the /metrics rule")
    for path in METRICS_REQUESTS:
        for source in [*INTERNET, *(ip for n in admin_networks(model) for ip in inside(n))]:
            assert_forbidden(answer(model, path, source), f"{path} from {source}")


def test_admin_paths_forward_only_from_the_configured_operator_networks(
    edge_model: StackModel,
) -> None:
    model = edge_model
    networks = admin_networks(model)
    for path in ADMIN_REQUESTS:
        for source in (ip for n in networks for ip in inside(n)):
            assert answer(model, path, source) == forward_to_app(model), f"{path} from {source}"
        for source in outside(networks):
            assert_forbidden(answer(model, path, source), f"{path} from {source}")


def test_admin_allow_rules_take_priority_over_the_admin_refusal_with_the_configured_cidrs(
    edge_model: StackModel,
) -> None:
    model = edge_model
    by_paths: dict[frozenset[str], list[Resource]] = {}
    for rule in rules(model):
        paths = frozenset(
            v
            for c in rule.inputs["conditions"]
            if "pathPattern" in c
            for v in c["pathPattern"]["values"]
        )
        if paths & ADMIN_PATHS:
            by_paths.setdefault(paths, []).append(rule)
    assert frozenset().union(*by_paths) == ADMIN_PATHS
    for paths, on_paths in by_paths.items():
        allow = [r for r in on_paths if r.inputs["actions"] == [forward_to_app(model)]]
        deny = [r for r in on_paths if r not in allow]
        assert allow and len(deny) == 1, sorted(paths)
        assert len(deny[0].inputs["conditions"]) == 1, "the refusal holds for every source"
        assert_forbidden(deny[0].inputs["actions"][0], str(sorted(paths)))
        assert max(r.inputs["priority"] for r in allow) < deny[0].inputs["priority"], sorted(paths)
        assert all(len(r.inputs["conditions"]) == 2 for r in allow), "allow = path AND source"
        allowed = [
            cidr
            for r in allow
            for c in r.inputs["conditions"]
            if "sourceIp" in c
            for cidr in c["sourceIp"]["values"]
        ]
        assert sorted(allowed) == sorted(admin_networks(model)), sorted(paths)


def test_shop_paths_still_reach_the_app_from_anywhere(edge_model: StackModel) -> None:
    for path in SHOP_REQUESTS:
        for source in INTERNET:
            assert answer(edge_model, path, source) == forward_to_app(edge_model), path


def test_listener_rules_stay_within_the_alb_quotas(edge_model: StackModel) -> None:
    model = edge_model
    listener_rules = model.of_type(LISTENER_RULE)
    assert listener_rules, "no listener rules"
    assert rules(model) == sorted(listener_rules, key=lambda r: r.inputs["priority"]), (
        "every rule belongs on the HTTPS listener (HTTP only redirects)"
    )
    priorities = [r.inputs["priority"] for r in listener_rules]
    assert len(set(priorities)) == len(priorities), "priorities must be unique on a listener"
    for rule in listener_rules:
        conditions = rule.inputs["conditions"]
        kinds = [next(iter(c)) for c in conditions]
        assert len(kinds) == len(set(kinds)), f"{rule.name}: one path and one source condition"
        values = [v for c in conditions for v in next(iter(c.values()))["values"]]
        assert all(
            len(next(iter(c.values()))["values"]) <= ALB_VALUES_PER_CONDITION for c in conditions
        ), rule.name
        assert len(values) <= ALB_VALUES_PER_RULE, rule.name
        assert sum(v.count("*") + v.count("?") for v in values) <= ALB_WILDCARDS_PER_RULE, rule.name
        assert 1 <= rule.inputs["priority"] <= ALB_MAX_PRIORITY, rule.name
