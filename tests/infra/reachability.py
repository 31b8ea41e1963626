"""Which tier can open which TCP port on which tier, computed from the mocked model.

Independent of how infra/ generates its rules: this reads the registered
resources (subnets, route tables, NAT and internet gateways, network ACLs,
security groups and what they are attached to) and evaluates a TCP connection
the way AWS does: a route must exist, both subnets' network ACLs must pass the
request and the reply (stateless, first matching rule by number wins, default
deny), and both security groups must allow it (stateful).
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass

from tests.infra.model import Resource, StackModel

INTERNET = "0.0.0.0/0"
ALL_PORTS = (0, 65535)
EPHEMERAL = (1024, 65535)


@dataclass(frozen=True)
class Host:
    """Something with an address in a tier: the internet, or resources in subnets."""

    tier: str
    resource: str
    subnet_ids: tuple[str, ...]  # empty: the internet
    security_group_ids: tuple[str, ...]
    public: bool  # reachable from the internet (public IP or internet-facing LB)


def _covers(outer: str, inner: str) -> bool:
    return ipaddress.ip_network(inner).subnet_of(ipaddress.ip_network(outer))  # type: ignore[arg-type]


def _ports_of(rule: dict, protocol_key: str) -> tuple[int, int] | None:
    protocol = str(rule.get(protocol_key, "-1")).lower()
    if protocol in ("-1", "all"):
        return ALL_PORTS
    if protocol not in ("tcp", "6"):
        return None
    return int(rule.get("fromPort", 0)), int(rule.get("toPort", 65535))


class Network:
    def __init__(self, model: StackModel, with_acls: bool = True, with_egress: bool = True):
        self.model = model
        self.with_acls = with_acls
        self.with_egress = with_egress
        self.subnets = {r.id: r for r in model.of_type("aws:ec2/subnet:Subnet")}
        self.tier_of_subnet = {sid: s.tags["tier"] for sid, s in self.subnets.items()}
        self.cidr_of_subnet = {sid: s.inputs["cidrBlock"] for sid, s in self.subnets.items()}
        self.route_table_of = {
            a.inputs["subnetId"]: a.inputs["routeTableId"]
            for a in model.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
        }
        self.routes: dict[str, list[dict]] = {}
        for route in model.of_type("aws:ec2/route:Route"):
            self.routes.setdefault(route.inputs["routeTableId"], []).append(route.inputs)
        self.igw_ids = {r.id for r in model.of_type("aws:ec2/internetGateway:InternetGateway")}
        self.nat_subnet = {
            r.id: r.inputs["subnetId"] for r in model.of_type("aws:ec2/natGateway:NatGateway")
        }
        self.acl_of_subnet: dict[str, str] = {}
        for acl in model.of_type("aws:ec2/networkAcl:NetworkAcl"):
            for subnet_id in acl.inputs.get("subnetIds", []):
                assert subnet_id not in self.acl_of_subnet, f"{subnet_id} is in two ACLs"
                self.acl_of_subnet[subnet_id] = acl.id
        self.acl_rules: dict[str, list[dict]] = {}
        for rule in model.of_type("aws:ec2/networkAclRule:NetworkAclRule"):
            self.acl_rules.setdefault(rule.inputs["networkAclId"], []).append(rule.inputs)
        for rules in self.acl_rules.values():
            rules.sort(key=lambda r: r["ruleNumber"])
        self.sg_rules = self._security_group_rules()

    # --- security groups -------------------------------------------------

    def _security_group_rules(
        self,
    ) -> list[tuple[str, str, tuple[int, int], str | None, str | None]]:
        """(group id, "ingress"/"egress", ports, peer group id, peer cidr) for every rule."""
        found = []
        for group in self.model.of_type("aws:ec2/securityGroup:SecurityGroup"):
            for direction in ("ingress", "egress"):
                for rule in group.inputs.get(direction) or []:
                    ports = _ports_of(rule, "protocol")
                    if ports is None:
                        continue
                    for peer in rule.get("securityGroups") or []:
                        found.append((group.id, direction, ports, peer, None))
                    for cidr in rule.get("cidrBlocks") or []:
                        found.append((group.id, direction, ports, None, cidr))
        for kind, direction in (
            ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "ingress"),
            ("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "egress"),
        ):
            for rule in self.model.of_type(kind):
                ports = _ports_of(rule.inputs, "ipProtocol")
                if ports is not None:
                    found.append(
                        (
                            rule.inputs["securityGroupId"],
                            direction,
                            ports,
                            rule.inputs.get("referencedSecurityGroupId"),
                            rule.inputs.get("cidrIpv4"),
                        )
                    )
        for rule in self.model.of_type("aws:ec2/securityGroupRule:SecurityGroupRule"):
            ports = _ports_of(rule.inputs, "protocol")
            if ports is None:
                continue
            direction = rule.inputs["type"]
            group = rule.inputs["securityGroupId"]
            if rule.inputs.get("sourceSecurityGroupId"):
                found.append((group, direction, ports, rule.inputs["sourceSecurityGroupId"], None))
            for cidr in rule.inputs.get("cidrBlocks") or []:
                found.append((group, direction, ports, None, cidr))
        return found

    def _sg_allows(self, group_ids: tuple[str, ...], direction: str, peer: Host, port: int) -> bool:
        if direction == "egress" and not self.with_egress:
            return True  # as if every group allowed all egress (the AWS default)
        peer_cidrs = self.cidrs(peer)
        for group, rule_direction, (low, high), peer_group, peer_cidr in self.sg_rules:
            if group not in group_ids or rule_direction != direction or not low <= port <= high:
                continue
            if peer_group is not None and peer_group in peer.security_group_ids:
                return True
            if peer_cidr is not None and all(_covers(peer_cidr, c) for c in peer_cidrs):
                return True
        return False

    # --- network ACLs and routes ------------------------------------------

    def cidrs(self, host: Host) -> list[str]:
        return [self.cidr_of_subnet[s] for s in host.subnet_ids] or [INTERNET]

    def _acl_verdict(self, subnet_id: str, egress: bool, peer_cidr: str, port: int) -> bool:
        acl = self.acl_of_subnet.get(subnet_id)
        if acl is None or not self.with_acls:
            return True  # the VPC's default ACL allows everything
        for rule in self.acl_rules.get(acl, []):
            if bool(rule.get("egress")) != egress:
                continue
            ports = _ports_of(rule, "protocol")
            if ports is None or not ports[0] <= port <= ports[1]:
                continue
            rule_net = ipaddress.ip_network(rule["cidrBlock"])
            peer_net = ipaddress.ip_network(peer_cidr)
            if rule["ruleAction"] == "allow" and peer_net.subnet_of(rule_net):  # type: ignore[arg-type]
                return True
            if rule["ruleAction"] == "deny" and peer_net.overlaps(rule_net):
                return False
        return False

    def _acl_allows_range(
        self, subnet_id: str, egress: bool, peer_cidr: str, ports: tuple[int, int]
    ) -> bool:
        acl = self.acl_of_subnet.get(subnet_id)
        edges = {ports[0]}
        for rule in self.acl_rules.get(acl or "", []):
            for edge in (rule["fromPort"], rule["toPort"] + 1):
                if ports[0] < edge <= ports[1]:
                    edges.add(edge)
        return all(self._acl_verdict(subnet_id, egress, peer_cidr, p) for p in edges)

    def acl_passes(self, subnet_id: str, peer_cidr: str, port: int, outbound_request: bool) -> bool:
        """Request on `port` one way through the subnet's ACL, the reply the other way."""
        return self._acl_verdict(subnet_id, outbound_request, peer_cidr, port) and (
            self._acl_allows_range(subnet_id, not outbound_request, peer_cidr, EPHEMERAL)
        )

    def default_route(self, subnet_id: str) -> dict | None:
        table = self.route_table_of.get(subnet_id)
        for route in self.routes.get(table or "", []):
            if route.get("destinationCidrBlock") == INTERNET:
                return route
        return None

    def _routes_to_igw(self, subnet_id: str) -> bool:
        route = self.default_route(subnet_id)
        return route is not None and route.get("gatewayId") in self.igw_ids

    # --- one connection ----------------------------------------------------

    def open(self, src: Host, dst: Host, port: int) -> bool:
        if src.subnet_ids and dst.subnet_ids:
            return any(
                self._inside(src, s, dst, d, port) for s in src.subnet_ids for d in dst.subnet_ids
            )
        if not src.subnet_ids:  # from the internet
            return dst.public and any(
                self._routes_to_igw(d)
                and self.acl_passes(d, INTERNET, port, outbound_request=False)
                and self._sg_allows(dst.security_group_ids, "ingress", src, port)
                for d in dst.subnet_ids
            )
        return any(self._to_internet(src, s, port) for s in src.subnet_ids)

    def _inside(self, src: Host, s: str, dst: Host, d: str, port: int) -> bool:
        return (
            self.acl_passes(s, self.cidr_of_subnet[d], port, outbound_request=True)
            and self.acl_passes(d, self.cidr_of_subnet[s], port, outbound_request=False)
            and self._sg_allows(src.security_group_ids, "egress", dst, port)
            and self._sg_allows(dst.security_group_ids, "ingress", src, port)
        )

    def _to_internet(self, src: Host, s: str, port: int) -> bool:
        internet = Host("internet", "internet", (), (), False)
        if not (
            self.acl_passes(s, INTERNET, port, outbound_request=True)
            and self._sg_allows(src.security_group_ids, "egress", internet, port)
        ):
            return False
        route = self.default_route(s)
        if route is None:
            return False
        if route.get("gatewayId") in self.igw_ids:
            return src.public
        nat_subnet = self.nat_subnet.get(route.get("natGatewayId", ""))
        if nat_subnet is None or not self._routes_to_igw(nat_subnet):
            return False
        return self.acl_passes(
            nat_subnet, self.cidr_of_subnet[s], port, outbound_request=False
        ) and self.acl_passes(nat_subnet, INTERNET, port, outbound_request=True)

    def breakpoints(self) -> list[int]:
        """Ports where some rule starts or ends: reachability is constant in between."""
        edges = {0, 65536}
        for rules in self.acl_rules.values():
            for rule in rules:
                edges |= {rule["fromPort"], rule["toPort"] + 1}
        for _, _, (low, high), _, _ in self.sg_rules:
            edges |= {low, high + 1}
        return sorted(e for e in edges if 0 <= e <= 65536)


def hosts(model: StackModel, endpoint_tier: str) -> list[Host]:
    """Every resource with an address in the VPC, with its subnets and security groups."""
    found: list[Host] = []
    subnet_groups = {
        g.inputs.get("name", g.state.get("name")): tuple(g.inputs["subnetIds"])
        for g in model.of_type("aws:rds/subnetGroup:SubnetGroup")
        + model.of_type("aws:elasticache/subnetGroup:SubnetGroup")
    }
    tier_of = {r.id: r.tags["tier"] for r in model.of_type("aws:ec2/subnet:Subnet")}

    def add(resource: Resource, subnet_ids: tuple[str, ...], groups: list[str], public: bool):
        tiers = {tier_of[s] for s in subnet_ids}
        assert len(tiers) == 1, f"{resource.name} spans tiers {tiers}"
        found.append(Host(tiers.pop(), resource.name, subnet_ids, tuple(groups), public))

    for lb in model.of_type("aws:lb/loadBalancer:LoadBalancer"):
        add(
            lb,
            tuple(lb.inputs["subnets"]),
            lb.inputs.get("securityGroups", []),
            not lb.inputs.get("internal", False),
        )
    templates = {t.id: t for t in model.of_type("aws:ec2/launchTemplate:LaunchTemplate")}
    for group in model.of_type("aws:autoscaling/group:Group"):
        template = templates[group.inputs["launchTemplate"]["id"]]
        nics = template.inputs.get("networkInterfaces") or [{}]
        sgs = [sg for nic in nics for sg in nic.get("securityGroups", [])]
        sgs += template.inputs.get("vpcSecurityGroupIds", [])
        public = any(str(n.get("associatePublicIpAddress")).lower() == "true" for n in nics)
        add(group, tuple(group.inputs["vpcZoneIdentifiers"]), sgs, public)
    for db in model.of_type("aws:rds/instance:Instance"):
        add(
            db,
            subnet_groups[db.inputs["dbSubnetGroupName"]],
            db.inputs.get("vpcSecurityGroupIds", []),
            bool(db.inputs.get("publiclyAccessible")),
        )
    for cache in model.of_type("aws:elasticache/replicationGroup:ReplicationGroup"):
        add(
            cache,
            subnet_groups[cache.inputs["subnetGroupName"]],
            cache.inputs["securityGroupIds"],
            False,
        )
    for instance in model.of_type("aws:ec2/instance:Instance"):
        add(
            instance,
            (instance.inputs["subnetId"],),
            instance.inputs.get("vpcSecurityGroupIds", []),
            bool(instance.inputs.get("associatePublicIpAddress")),
        )
    for endpoint in model.of_type("aws:ec2/vpcEndpoint:VpcEndpoint"):
        subnets = tuple(endpoint.inputs["subnetIds"])
        found.append(
            Host(
                endpoint_tier,
                endpoint.name,
                subnets,
                tuple(endpoint.inputs["securityGroupIds"]),
                False,
            )
        )
    return found


def reachability(
    model: StackModel,
    tiers: list[str],
    internet_tiers: tuple[str, str],
    endpoint_tier: str,
    with_acls: bool = True,
    with_egress: bool = True,
) -> dict[tuple[str, str], set[tuple[int, int]]]:
    """(source tier, destination tier) -> the TCP port ranges open from any host to any host."""
    network = Network(model, with_acls, with_egress)
    source_internet, destination_internet = internet_tiers
    by_tier: dict[str, list[Host]] = {t: [] for t in tiers}
    for host in hosts(model, endpoint_tier):
        by_tier.setdefault(host.tier, []).append(host)
    internet = Host("internet", "internet", (), (), False)
    by_tier[source_internet] = [internet]
    by_tier[destination_internet] = [internet]

    edges = network.breakpoints()
    matrix: dict[tuple[str, str], set[int]] = {}
    for src in tiers:
        for dst in tiers:
            if src == dst:
                continue
            ranges: set[tuple[int, int]] = set()
            sources = [] if src == destination_internet else by_tier[src]
            targets = [] if dst == source_internet else by_tier[dst]
            for low, next_edge in itertools.pairwise(edges):
                if any(network.open(s, d, low) for s in sources for d in targets):
                    ranges.add((low, next_edge - 1))
            matrix[(src, dst)] = ranges
    return matrix
