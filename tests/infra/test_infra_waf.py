"""The WAF's rules on the decoded path: what the web ACL does to a request before the ALB.

The listener rules (test_infra_edge_rules.py) match the path as sent; the app
(uvicorn) percent-decodes it before routing, so `/%6detrics` passes them and is
served as `/metrics`. The web ACL's first rules match the decoded path. The
mocks cannot run a WAF, so `verdict` evaluates the web ACL the way WAF does
(rules by ascending priority, the first terminating match wins) for the
statements these rules use, and stops at the first rule it cannot evaluate (a
managed group or the rate limit): a request that gets there was not blocked by
the path rules. The text transformations are modelled on their AWS descriptions:
URL_DECODE as uvicorn decodes (`urllib.parse.unquote`), NORMALIZE_PATH as
repeated slashes, `.` and `..` segments resolved, LOWERCASE as `str.lower`.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any
from urllib.parse import unquote

import pytest

from tests.infra.model import STACKS, Resource, StackModel, load_dev_with_admin_cidrs

WEB_ACL = "aws:wafv2/webAcl:WebAcl"
IP_SET = "aws:wafv2/ipSet:IpSet"
INTERNET = ("8.8.8.8", "1.1.1.1")
# Each of these reaches the app's /metrics or lies below it, once decoded (and normalised).
METRICS_REQUESTS = (
    "/metrics",
    "/metrics/",
    "/%6detrics",
    "/%6Detrics",
    "/%6d%65%74%72%69%63%73",
    "/metrics%2f",
    "/METRICS",
    "//metrics",
    "/x/..%2fmetrics",
)
# Each of these is the admin API or back office, once decoded (and normalised).
ADMIN_REQUESTS = (
    "/api/admin",
    "/api/admin/",
    "/api/%61dmin/products/SKU-1/stock",
    "/api%2fadmin/users",
    "/%61dmin",
    "/%61dmin/x",
    "/API/Admin/orders",
    "/api//admin/users",
    # The app routes this below /api/admin; normalised it is /api/products: the rule must
    # also look at the path un-normalised.
    "/api/admin/%2e%2e/products",
)
# Shop paths that only look alike: the path rules must let them through from anywhere.
SHOP_REQUESTS = (
    "/",
    "/api/products",
    "/api/products/%6detrics",
    "/api/administrators",
    "/api/%61dministrators",
    "/administration",
    "/metricsx",
    "/%6detricsx",
)
OTHER_NETWORKS_CASE = "dev with other operator networks"
OTHER_NETWORKS = ("203.0.113.0/25", "203.0.113.200/32", "198.18.0.0/15")


def web_acl(model: StackModel) -> Resource:
    return model.one(WEB_ACL)


def admin_networks(model: StackModel) -> list[str]:
    return json.loads(model.config_value("adminCidrs"))


def byte_matches(statement: dict[str, Any]) -> list[dict[str, Any]]:
    """Every byte match statement in `statement`, however nested."""
    found = []
    for key, value in statement.items():
        if key == "byteMatchStatement":
            found.append(value)
        elif key in ("andStatement", "orStatement"):
            for inner in value["statements"]:
                found += byte_matches(inner)
        elif key == "notStatement":
            found += byte_matches(value["statement"])
    return found


def path_rules(model: StackModel) -> list[dict[str, Any]]:
    """The web ACL's rules that inspect the request path."""
    return [
        r
        for r in web_acl(model).inputs["rules"]
        if any("uriPath" in m["fieldToMatch"] for m in byte_matches(r["statement"]))
    ]


def _normalize_path(path: str) -> str:
    segments: list[str] = []
    for segment in path.split("/")[1:]:
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    normalised = "/" + "/".join(segments)
    return normalised + "/" if segments and path.endswith("/") else normalised


TRANSFORMATIONS = {
    "URL_DECODE": unquote,
    "NORMALIZE_PATH": _normalize_path,
    "LOWERCASE": str.lower,
}


def _transformed(value: str, transformations: list[dict[str, Any]]) -> str:
    for step in sorted(transformations, key=lambda t: t["priority"]):
        value = TRANSFORMATIONS[step["type"]](value)
    return value


class NotEvaluable(Exception):
    """A statement the model cannot evaluate: a managed rule group or a rate limit."""


def _holds(model: StackModel, statement: dict[str, Any], path: str, source_ip: str) -> bool:
    ((kind, body),) = statement.items()
    match kind:
        case "byteMatchStatement":
            assert set(body["fieldToMatch"]) == {"uriPath"}, body["fieldToMatch"]
            value = _transformed(path, body.get("textTransformations") or [])
            search = body["searchString"]
            match body["positionalConstraint"]:
                case "EXACTLY":
                    return value == search
                case "STARTS_WITH":
                    return value.startswith(search)
            raise AssertionError(f"the evaluator does not know {body['positionalConstraint']}")
        case "andStatement":
            return all(_holds(model, s, path, source_ip) for s in body["statements"])
        case "orStatement":
            return any(_holds(model, s, path, source_ip) for s in body["statements"])
        case "notStatement":
            return not _holds(model, body["statement"], path, source_ip)
        case "ipSetReferenceStatement":
            assert "ipSetForwardedIpConfig" not in body, "the ALB's peer is the client"
            (ip_set,) = [s for s in model.of_type(IP_SET) if s.state["arn"] == body["arn"]]
            address = ipaddress.IPv4Address(source_ip)
            return any(address in ipaddress.IPv4Network(a) for a in ip_set.inputs["addresses"])
        case "managedRuleGroupStatement" | "rateBasedStatement":
            raise NotEvaluable(kind)
    raise AssertionError(f"the evaluator does not know the statement {kind}")


def verdict(model: StackModel, path: str, source_ip: str) -> str:
    """The name of the path rule that blocks the request, or "passed" if none does."""
    for rule in sorted(web_acl(model).inputs["rules"], key=lambda r: r["priority"]):
        try:
            matched = _holds(model, rule["statement"], path, source_ip)
        except NotEvaluable:
            return "passed"
        if matched:
            assert rule.get("action") == {"block": {}}, rule["name"]
            return rule["name"]
    return "passed"


def inside(networks: list[str]) -> list[str]:
    return [
        str(address)
        for n in map(ipaddress.IPv4Network, networks)
        for address in (n.network_address, n.broadcast_address)
    ]


def outside(networks: list[str]) -> list[str]:
    """The internet, and the address just past each operator network (unless it is another)."""
    nets = [ipaddress.IPv4Network(n) for n in networks]
    candidates = [*INTERNET, *(str(n.broadcast_address + 1) for n in nets)]
    return [c for c in candidates if not any(ipaddress.IPv4Address(c) in n for n in nets)]


@pytest.fixture(params=[*STACKS, OTHER_NETWORKS_CASE])
def waf_model(request: pytest.FixtureRequest, models: dict[str, StackModel]) -> StackModel:
    """Every stack, and dev with operator networks unlike the stack files' placeholders."""
    if request.param == OTHER_NETWORKS_CASE:
        return load_dev_with_admin_cidrs(OTHER_NETWORKS)
    return models[request.param]


def test_waf_blocks_metrics_however_encoded_from_every_source(waf_model: StackModel) -> None:
    model = waf_model
    sources = [*INTERNET, *inside(admin_networks(model))]
    for path in METRICS_REQUESTS:
        for source in sources:
            blocking = verdict(model, path, source)
            assert blocking != "passed", f"{path} from {source} passes the WAF"
            assert "metrics" in blocking, f"{path} from {source}: blocked by {blocking}"
    for path in SHOP_REQUESTS:
        for source in INTERNET:
            assert verdict(model, path, source) == "passed", f"the shop's {path} is blocked"


def test_waf_blocks_admin_paths_however_encoded_outside_the_operator_networks(
    waf_model: StackModel,
) -> None:
    model = waf_model
    networks = admin_networks(model)
    for path in ADMIN_REQUESTS:
        for source in outside(networks):
            assert verdict(model, path, source) != "passed", f"{path} from {source} passes"
        for source in inside(networks):
            assert verdict(model, path, source) == "passed", f"{path} from operator {source}"
    for path in SHOP_REQUESTS:
        for source in outside(networks):
            assert verdict(model, path, source) == "passed", f"the shop's {path} is blocked"


def test_waf_path_rules_match_the_decoded_path_in_both_views(model: StackModel) -> None:
    """URL_DECODE first, LOWERCASE last (the prefixes are lowercase), with and without
    NORMALIZE_PATH in between; the exact prefix and everything below it."""
    rules = path_rules(model)
    assert len(rules) == 2, [r["name"] for r in rules]
    for rule in rules:
        matches = byte_matches(rule["statement"])
        chains = set()
        for match in matches:
            assert match["fieldToMatch"] == {"uriPath": {}}, rule["name"]
            steps = sorted(match["textTransformations"], key=lambda t: t["priority"])
            chains.add(tuple(t["type"] for t in steps))
            assert match["searchString"] == match["searchString"].lower(), rule["name"]
        assert chains == {
            ("URL_DECODE", "LOWERCASE"),
            ("URL_DECODE", "NORMALIZE_PATH", "LOWERCASE"),
        }, rule["name"]
        searched = {(m["positionalConstraint"], m["searchString"]) for m in matches}
        prefixes = {s for c, s in searched if c == "EXACTLY"}
        assert prefixes, rule["name"]
        assert searched == {
            *(("EXACTLY", p) for p in prefixes),
            *(("STARTS_WITH", f"{p}/") for p in prefixes),
        }, rule["name"]
        assert len(matches) == 2 * len(searched), "each match once per view"
    searched_by_rule = {
        frozenset(m["searchString"] for m in byte_matches(r["statement"])) for r in rules
    }
    assert searched_by_rule == {
        frozenset({"/metrics", "/metrics/"}),
        frozenset({"/api/admin", "/api/admin/", "/admin", "/admin/"}),
    }


def test_waf_path_rules_block_before_the_managed_groups_and_the_rate_limit(
    model: StackModel,
) -> None:
    rules = web_acl(model).inputs["rules"]
    priorities = [r["priority"] for r in rules]
    assert len(set(priorities)) == len(priorities), "priorities must be unique in a web ACL"
    mine = path_rules(model)
    assert mine, "no WAF rule inspects the request path"
    others = [r for r in rules if r not in mine]
    assert {next(iter(r["statement"])) for r in others} == {
        "managedRuleGroupStatement",
        "rateBasedStatement",
    }
    assert max(r["priority"] for r in mine) < min(r["priority"] for r in others)
    assert all(r["action"] == {"block": {}} for r in mine)


def test_admin_ip_set_holds_exactly_the_operator_networks(waf_model: StackModel) -> None:
    ip_set = waf_model.one(IP_SET)
    assert ip_set.inputs["scope"] == "REGIONAL"
    assert ip_set.inputs["ipAddressVersion"] == "IPV4"
    assert sorted(ip_set.inputs["addresses"]) == sorted(admin_networks(waf_model))


def test_admin_rule_is_admin_path_and_not_from_the_operator_ip_set(model: StackModel) -> None:
    ip_set = model.one(IP_SET)
    (admin,) = [
        r
        for r in path_rules(model)
        if "/api/admin" in {m["searchString"] for m in byte_matches(r["statement"])}
    ]
    ((kind, body),) = admin["statement"].items()
    assert kind == "andStatement"
    paths, negated = body["statements"]
    assert set(paths) == {"orStatement"}
    assert all(set(s) == {"byteMatchStatement"} for s in paths["orStatement"]["statements"])
    assert negated == {
        "notStatement": {"statement": {"ipSetReferenceStatement": {"arn": ip_set.state["arn"]}}}
    }
