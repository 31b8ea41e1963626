"""Each stack spreads app servers and database nodes over at least 2 zones (3 in prod)."""

from __future__ import annotations

from tests.infra.model import StackModel


def minimum_zones(stack: str) -> int:
    return 3 if stack == "prod" else 2


def zone_of_subnet(model: StackModel) -> dict[str, str]:
    return {s.id: s.inputs["availabilityZone"] for s in model.of_type("aws:ec2/subnet:Subnet")}


def test_app_servers_span_the_zones(model: StackModel) -> None:
    zones = zone_of_subnet(model)
    group = model.one("aws:autoscaling/group:Group")
    app_zones = {zones[s] for s in group.inputs["vpcZoneIdentifiers"]}
    assert len(app_zones) >= minimum_zones(model.stack)
    # at least one server per zone from the start
    assert group.inputs["minSize"] >= len(app_zones)


def test_database_nodes_span_the_zones(model: StackModel) -> None:
    """A Multi-AZ instance has its two nodes in the two zones of its two-zone subnet group."""
    zones = zone_of_subnet(model)
    groups = {
        g.inputs.get("name", g.state["name"]): g.inputs["subnetIds"]
        for g in model.of_type("aws:rds/subnetGroup:SubnetGroup")
    }
    node_zones: set[str] = set()
    for db in model.of_type("aws:rds/instance:Instance"):
        group_zones = {zones[s] for s in groups[db.inputs["dbSubnetGroupName"]]}
        assert db.inputs["multiAz"] is True, db.name
        assert len(group_zones) == 2, f"{db.name}: the pair's zones must be pinned"
        node_zones |= group_zones
    assert len(node_zones) >= minimum_zones(model.stack)


def test_cache_nodes_span_the_zones(model: StackModel) -> None:
    cache = model.one("aws:elasticache/replicationGroup:ReplicationGroup")
    azs = cache.inputs["preferredCacheClusterAzs"]
    assert len(set(azs)) == cache.inputs["numCacheClusters"] >= minimum_zones(model.stack)
    assert cache.inputs["multiAzEnabled"] is True


def test_load_balancer_spans_every_zone(model: StackModel) -> None:
    zones = zone_of_subnet(model)
    lb = model.one("aws:lb/loadBalancer:LoadBalancer")
    assert len({zones[s] for s in lb.inputs["subnets"]}) == int(model.config_value("zoneCount"))
