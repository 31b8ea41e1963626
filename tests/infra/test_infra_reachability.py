"""The firewalls of the mocked model open exactly the topology's flows, as realised in AWS."""

from __future__ import annotations

import pytest

import topology
from infra import realisation
from tests.infra.model import StackModel
from tests.infra.reachability import reachability

TIERS = [*topology.load().tiers, realisation.AWS_API_TIER]


@pytest.fixture(scope="module")
def matrices(models: dict[str, StackModel]) -> dict[str, dict[tuple[str, str], set]]:
    return {
        stack: reachability(
            model,
            TIERS,
            (realisation.INTERNET_SOURCE_TIER, realisation.INTERNET_DESTINATION_TIER),
            realisation.AWS_API_TIER,
        )
        for stack, model in models.items()
    }


def expected_matrix() -> dict[tuple[str, str], set[tuple[int, int]]]:
    expected: dict[tuple[str, str], set[tuple[int, int]]] = {
        (s, d): set() for s in TIERS for d in TIERS if s != d
    }
    flows = realisation.realised_flows(topology.load())
    for flow in flows + realisation.implied_flows(flows):
        expected[(flow.source, flow.destination)].add((flow.port, flow.port))
    return expected


def test_every_allowed_flow_open_and_everything_else_closed(model: StackModel, matrices) -> None:
    actual = matrices[model.stack]
    expected = expected_matrix()
    wrong = {
        pair: {"open": sorted(actual[pair]), "expected": sorted(expected[pair])}
        for pair in expected
        if actual[pair] != expected[pair]
    }
    assert not wrong, f"{model.stack}: reachability differs from the topology: {wrong}"


def test_security_groups_alone_open_exactly_the_flows(model: StackModel) -> None:
    """The inner layer holds on its own: with every network ACL open, nothing more is reachable."""
    actual = reachability(
        model,
        TIERS,
        (realisation.INTERNET_SOURCE_TIER, realisation.INTERNET_DESTINATION_TIER),
        realisation.AWS_API_TIER,
        with_acls=False,
    )
    expected = expected_matrix()
    wrong = {pair: sorted(actual[pair]) for pair in expected if actual[pair] != expected[pair]}
    assert not wrong, f"{model.stack}: security groups alone open {wrong}"


def test_security_group_ingress_alone_admits_only_the_flows(model: StackModel) -> None:
    """Each group's inbound rules hold even if every group let everything out.

    What a group admits from the whole internet it admits from every tier too.
    """
    actual = reachability(
        model,
        TIERS,
        (realisation.INTERNET_SOURCE_TIER, realisation.INTERNET_DESTINATION_TIER),
        realisation.AWS_API_TIER,
        with_acls=False,
        with_egress=False,
    )
    expected = expected_matrix()
    world = realisation.INTERNET_SOURCE_TIER
    wrong = {
        (src, dst): sorted(actual[(src, dst)])
        for (src, dst), ports in expected.items()
        if realisation.INTERNET_DESTINATION_TIER not in (src, dst)
        and actual[(src, dst)] != ports | expected.get((world, dst), set())
    }
    assert not wrong, f"{model.stack}: security group ingress alone admits {wrong}"


def test_internet_reaches_only_the_load_balancer_on_web_ports(model: StackModel, matrices) -> None:
    topo = topology.load()
    opened = {dst: ports for (src, dst), ports in matrices[model.stack].items() if src == "public"}
    web = {(topo.port("http"),) * 2, (topo.port("https"),) * 2}
    assert opened.pop("dmz") == web
    assert all(not ports for ports in opened.values()), opened


def test_database_reachable_only_from_app_tier_on_its_protocol(model: StackModel, matrices) -> None:
    topo = topology.load()
    pg = (topo.port("postgres"), topo.port("postgres"))
    openers = {src for (src, dst), ports in matrices[model.stack].items() if pg in ports}
    assert openers == {"app"}
    assert matrices[model.stack][("app", "data")] == {pg, (topo.port("redis"),) * 2}


def test_nothing_opens_ssh_but_the_management_tier(model: StackModel, matrices) -> None:
    ssh = topology.load().port("ssh")
    openers = {
        src
        for (src, _), ranges in matrices[model.stack].items()
        for low, high in ranges
        if low <= ssh <= high
    }
    assert openers <= {"mgmt"}


def test_management_host_takes_no_inbound_connections(model: StackModel, matrices) -> None:
    inbound = {src: p for (src, dst), p in matrices[model.stack].items() if dst == "mgmt" and p}
    assert inbound == {}


def test_every_topology_flow_is_realised_or_explained() -> None:
    topo = topology.load()
    realised, unrealised = realisation.split_flows(topo)
    accounted = {(f.source, f.destination, f.port_name) for f in unrealised}
    mapped = realisation.PARTNER_PORTS_IN_AWS
    for flow in topo.flows:
        for port in flow.ports:
            in_aws = mapped.get(port, port) if flow.destination == "partners" else port
            is_realised = any(
                (r.source, r.destination, r.port)
                == (flow.source, flow.destination, topo.port(in_aws))
                for r in realised
            )
            assert is_realised or (flow.source, flow.destination, port) in accounted
    assert all(f.reason and f.reason != "not mapped" for f in unrealised)


# Reviewed by hand: the topology flows (port by port) that AWS does not realise.
# A new flow the realisation cannot place lands here and fails this test, so
# it is looked at instead of silently dropped.
KNOWN_UNREALISED = {
    ("mgmt", "dmz", "ssh"),
    ("mgmt", "dmz", "node_exporter"),
    ("mgmt", "dmz", "haproxy_metrics"),
    ("mgmt", "data", "ssh"),
    ("mgmt", "data", "node_exporter"),
    ("mgmt", "data", "postgres_exporter"),
    ("mgmt", "data", "redis_exporter"),
    ("mgmt", "partners", "ssh"),
    ("mgmt", "partners", "node_exporter"),
    ("mgmt", "partners", "partners_metrics"),
}


def test_unrealised_flows_are_the_reviewed_ones() -> None:
    _, unrealised = realisation.split_flows(topology.load())
    assert {(f.source, f.destination, f.port_name) for f in unrealised} == KNOWN_UNREALISED


def test_partners_are_reached_only_over_https_and_smtp_in_aws() -> None:
    topo = topology.load()
    realised, _ = realisation.split_flows(topo)
    to_partners = {(f.source, f.port_name) for f in realised if f.destination == "partners"}
    assert to_partners == {("app", "https"), ("app", "smtp")}


def test_topology_tier_without_a_place_in_aws_is_refused() -> None:
    topo = topology.load()
    tiers = dict(topo.tiers)
    tiers["backoffice"] = tiers["app"]
    changed = topo.model_copy(update={"tiers": tiers})
    with pytest.raises(ValueError, match="backoffice"):
        realisation.split_flows(changed)
