"""The topology file loads, its references resolve, and its answers are right."""

import copy

import pytest
import yaml
from pydantic import ValidationError

import topology
from topology import TOPOLOGY_FILE, Topology


@pytest.fixture()
def raw() -> dict:
    return yaml.safe_load(TOPOLOGY_FILE.read_text())


def test_loads_and_is_cached():
    assert topology.load() is topology.load()


def test_database_only_from_app_tier_on_its_one_port():
    topo = topology.load()
    pg = topo.port("postgres")
    openers = {
        src for (src, dst), ports in topo.flow_matrix().items() if dst == "data" and pg in ports
    }
    assert openers == {"app"}
    assert topo.allowed_ports("app", "data") == {pg, topo.port("redis")}


def test_public_reaches_only_the_dmz_on_web_ports():
    topo = topology.load()
    reached = {
        dst: ports for (src, dst), ports in topo.flow_matrix().items() if src == "public" and ports
    }
    assert reached == {"dmz": {80, 443}}


def test_scrape_targets_follow_inventory():
    topo = topology.load()
    targets = topo.scrape_targets(topo.lab_hosts_by_tier())
    assert targets["shop"] == ["app-a1:8000", "app-b1:8000"]
    assert "db:9187" in targets["postgres"]
    assert "mon:9100" in targets["node"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t["flows"][0]["ports"].append("telnet"), "unknown port name 'telnet'"),
        (lambda t: t["flows"][0].update({"to": "moon"}), "unknown tier 'moon'"),
        (lambda t: t["lab"]["hosts"]["app-a1"].update({"zone": "z"}), "unknown zone 'z'"),
        (
            lambda t: t["flows"].__setitem__(
                slice(None),
                [f for f in t["flows"] if not (f["from"] == "mgmt" and f["to"] == "data")],
            ),
            "scrape job postgres: no mgmt flow allows port postgres_exporter",
        ),
    ],
)
def test_broken_references_are_named(raw, mutate, message):
    broken = copy.deepcopy(raw)
    mutate(broken)
    with pytest.raises(ValidationError, match=message):
        Topology.model_validate(broken)
