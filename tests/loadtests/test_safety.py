"""Load goes only to loopback and the lab unless the operator says they own the target."""

from __future__ import annotations

import pytest

import topology
from loadtests.safety import UnsafeTarget, check_target


def resolver(table: dict[str, list[str]]):
    return lambda host: table.get(host, [])


def test_the_default_local_shop_is_allowed():
    target = check_target("http://127.0.0.1:8000")
    assert target.is_local and target.on_this_machine and not target.owned_override
    assert (target.url, target.port) == ("http://127.0.0.1:8000", 8000)


def test_loopback_names_and_addresses():
    assert check_target("http://[::1]:9000").is_local
    assert check_target("https://127.0.0.1:8443").port == 8443
    local = check_target("http://localhost:8000", resolve=resolver({"localhost": ["127.0.0.1"]}))
    assert local.is_local


def test_lab_hosts_by_address_and_by_container_name():
    lab_edge_net = topology.load().tiers["dmz"].lab_subnet
    address = lab_edge_net.replace("0/24", "10")
    by_ip = check_target(f"https://{address}")
    assert by_ip.on_this_machine and not by_ip.is_local and by_ip.port == 443
    by_name = check_target("https://edge", resolve=resolver({"edge": [address]}))
    assert by_name.addresses == (address,)


def test_a_foreign_target_is_refused_with_the_way_out():
    with pytest.raises(UnsafeTarget, match="--i-own-this-target"):
        check_target(
            "https://shop.example.com", resolve=resolver({"shop.example.com": ["93.184.216.34"]})
        )
    with pytest.raises(UnsafeTarget, match=r"10\.0\.0\.5"):
        check_target("http://10.0.0.5:8000")


def test_a_name_with_any_foreign_address_is_refused():
    mixed = resolver({"edge": ["10.89.1.10", "203.0.113.7"]})
    with pytest.raises(UnsafeTarget, match=r"203\.0\.113\.7"):
        check_target("https://edge", resolve=mixed)


def test_an_unresolvable_name_is_refused():
    with pytest.raises(UnsafeTarget, match="does not resolve"):
        check_target("https://nowhere.invalid", resolve=resolver({}))


def test_the_owner_may_load_their_own_target():
    target = check_target(
        "https://shop.example.com",
        owned=True,
        resolve=resolver({"shop.example.com": ["198.51.100.4"]}),
    )
    assert target.owned_override and not target.on_this_machine


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("127.0.0.1:8000", "not an http"),
        ("ftp://127.0.0.1", "not an http"),
        ("http://127.0.0.1:8000/api/products", "without a path"),
        ("http://127.0.0.1:99999", "invalid port"),
    ],
)
def test_malformed_targets(url: str, message: str):
    with pytest.raises(ValueError, match=message):
        check_target(url, owned=True)
