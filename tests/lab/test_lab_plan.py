"""The lab's plan and helpers, without building anything: fast, and run everywhere."""

from __future__ import annotations

import ipaddress
import itertools
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import topology
from lab import image, monitoring_access
from lab.converge import parse_recap
from lab.inventory import tier_sources
from lab.layout import network_tiers, peer_addresses, plan, shared_tiers
from lab.settings import LabSettings, SettingsError, from_env

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
sys.path.insert(0, str(PLAYBOOKS / "filter_plugins"))

import release_filters  # noqa: E402
import topology_filters  # noqa: E402
import web_auth_filters  # noqa: E402

TOPO = topology.load()


def flow_between(a: str, b: str) -> bool:
    return bool(TOPO.allowed_ports(a, b) or TOPO.allowed_ports(b, a))


def test_hosts_share_a_network_only_where_a_flow_exists():
    hosts = plan(LabSettings())
    for a, b in itertools.combinations(hosts.values(), 2):
        if shared_tiers(a, b):
            assert a.tier == b.tier or flow_between(a.tier, b.tier), (a.name, b.name)


def test_every_flow_is_possible_at_the_network_layer():
    hosts = plan(LabSettings())
    for flow in TOPO.flows:
        for source in (h for h in hosts.values() if h.tier == flow.source):
            for destination in (h for h in hosts.values() if h.tier == flow.destination):
                assert destination.name in peer_addresses(source, hosts), (
                    source.name,
                    destination.name,
                )


def test_the_internet_sees_only_the_edge():
    hosts = plan(LabSettings())
    (client,) = [h for h in hosts.values() if h.tier == "public"]
    assert set(peer_addresses(client, hosts)) == {h.name for h in hosts.values() if h.tier == "dmz"}


def test_network_rule():
    joined = network_tiers(TOPO)
    assert joined["edge"] == ["dmz", "public", "app"]
    assert joined["app-a1"] == ["app", "data", "partners"]
    assert joined["db"] == ["data"]
    assert joined["mon"][0] == "mgmt" and set(joined["mon"]) == {
        "mgmt",
        "dmz",
        "app",
        "data",
        "partners",
    }


def test_addresses_are_unique_and_inside_their_subnets():
    settings = LabSettings(subnet_shift=100)
    hosts = plan(settings)
    seen = set()
    for host in hosts.values():
        for tier, address in host.addresses.items():
            assert ipaddress.ip_address(address) in settings.subnet(tier)
            assert address not in seen
            seen.add(address)
    assert str(settings.subnet("public")) == "10.89.100.0/24"


def test_tier_sources_are_the_tiers_hosts_except_the_internet():
    settings = LabSettings()
    hosts = plan(settings)
    sources = tier_sources(settings, hosts)
    assert sources["public"] == [str(settings.subnet("public"))]
    mon = hosts["mon"]
    assert sorted(sources["mgmt"]) == sorted(f"{a}/32" for a in mon.addresses.values())


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"LAB_PORT_EDGE_HTTPS": "84x3"}, "LAB_PORT_EDGE_HTTPS"),
        ({"LAB_PORT_EDGE_HTTPS": "70000"}, "not a TCP port"),
        ({"LAB_NAME": "Bad Name"}, "lab name"),
        ({"LAB_SUBNET_SHIFT": "-1"}, "LAB_SUBNET_SHIFT"),
        ({"LAB_SUBNET_SHIFT": "300"}, "subnet shift"),
    ],
)
def test_bad_settings_are_named(environ, problem):
    with pytest.raises(SettingsError, match=problem):
        from_env(environ)


def test_settings_from_env():
    settings = from_env({"LAB_NAME": "mylab", "LAB_PORT_PROMETHEUS": "19090"})
    assert settings.loopback_port("prometheus") == 19090
    assert settings.loopback_port("edge_https") == TOPO.lab.published["edge_https"].loopback
    assert settings.container("db") == "mylab-db"
    assert not settings.is_main and settings.inventory_dir.is_relative_to(settings.state_dir)


def test_cli_names_a_bad_setting():
    result = subprocess.run(
        [sys.executable, "-m", "lab", "status"],
        cwd=REPO,
        env={"LAB_PORT_EDGE_HTTPS": "none", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "LAB_PORT_EDGE_HTTPS='none'" in result.stderr


def test_parse_recap():
    output = (
        "PLAY RECAP ****\n"
        "app-a1      : ok=47   changed=1    unreachable=0    failed=0    skipped=5    rescued=0\n"
        "db          : ok=57   changed=0    unreachable=1    failed=2    skipped=3    rescued=0\n"
    )
    recap = parse_recap(output)
    assert recap["app-a1"].changed == 1
    assert (recap["db"].unreachable, recap["db"].failed) == (1, 2)


def test_image_tag_follows_the_package_list(tmp_path, monkeypatch):
    before = image.tag()
    listing = tmp_path / "packages.txt"
    listing.write_text(image.PACKAGES_FILE.read_text() + "strace  # a new tool\n")
    monkeypatch.setattr(image, "PACKAGES_FILE", listing)
    assert "strace" in image.packages()
    assert image.tag() != before


def test_inbound_rules_come_from_the_flows():
    sources = {tier: [f"10.0.{i}.0/24"] for i, tier in enumerate(TOPO.tiers)}
    rules = topology_filters.topology_inbound("data", sources)
    by_source = {rule["from"]: set(rule["ports"]) for rule in rules}
    assert by_source == {
        "app": TOPO.allowed_ports("app", "data"),
        "mgmt": TOPO.allowed_ports("mgmt", "data"),
    }
    assert topology_filters.topology_inbound("public", sources) == []
    assert topology_filters.topology_openers("data", "postgres") == ["app"]


def test_filters_name_unknown_things():
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="unknown port name 'postgress'"):
        topology_filters.topology_port("postgress")
    with pytest.raises(AnsibleFilterError, match="unknown tier"):
        topology_filters.topology_inbound("nowhere", {})


def test_source_digest_changes_with_content(tmp_path):
    (tmp_path / "pkg").mkdir()
    module = tmp_path / "pkg" / "mod.py"
    module.write_text("x = 1\n")
    first = release_filters.source_digest([str(tmp_path / "pkg")])
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    assert release_filters.source_digest([str(tmp_path / "pkg")]) == first
    module.write_text("x = 2\n")
    assert release_filters.source_digest([str(tmp_path / "pkg")]) != first


def test_the_monitoring_password_hash_is_the_same_every_run_and_verifies():
    """A random salt would rewrite the web config on every converge (never 0 changed)."""
    import bcrypt
    from ansible.errors import AnsibleFilterError

    password = "a-lab-password-of-32-characters!"
    hashed = web_auth_filters.bcrypt_hash(password, "mon:operator", 4)
    assert hashed.startswith("$2b$04$") and len(hashed) == 60
    assert web_auth_filters.bcrypt_hash(password, "mon:operator", 4) == hashed
    assert bcrypt.checkpw(password.encode(), hashed.encode())
    assert not bcrypt.checkpw(b"another password", hashed.encode())
    # another host or user: another salt; another password: another hash
    assert web_auth_filters.bcrypt_hash(password, "mon-b:operator", 4)[:29] != hashed[:29]
    assert web_auth_filters.bcrypt_hash("rotated " + password, "mon:operator", 4) != hashed
    with pytest.raises(AnsibleFilterError, match="empty"):
        web_auth_filters.bcrypt_hash("", "mon:operator")
    with pytest.raises(AnsibleFilterError, match="72 bytes"):
        web_auth_filters.bcrypt_hash("x" * 73, "mon:operator")


def test_the_lab_cli_logs_in_as_the_monitoring_roles_user_over_https():
    defaults = yaml.safe_load((PLAYBOOKS / "roles/monitoring/defaults/main.yml").read_text())
    assert defaults["monitoring_web_username"] == monitoring_access.USERNAME
    lab_vars = (PLAYBOOKS / "inventories/lab/group_vars/all.yml").read_text()
    assert f"lab_secrets_dir ~ '/{monitoring_access.PASSWORD_FILE_NAME}'" in lab_vars
    settings = LabSettings(name="mylab")
    access = monitoring_access.for_lab(settings)
    assert access.ca_file == settings.state_dir / "pki" / "ca.crt"
    assert access.password_file == settings.state_dir / "secrets" / "monitoring_web"
    with pytest.raises(monitoring_access.MonitoringAccessError, match="converge the lab first"):
        access.password()
    schemes = {key: pub.scheme for key, pub in TOPO.lab.published.items()}
    assert schemes == {
        "edge_https": "https",
        "edge_http": "http",
        "prometheus": "https",
        "alertmanager": "https",
    }


def test_every_role_documents_every_default_in_its_argument_spec():
    for role in sorted((PLAYBOOKS / "roles").iterdir()):
        defaults_file = role / "defaults" / "main.yml"
        defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else {}
        specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
        documented = set(specs["main"]["options"])
        assert set(defaults or {}) <= documented, role.name
        for name in documented:
            assert name.startswith(f"{role.name}_"), (role.name, name)


def test_removing_the_lab_survives_a_container_that_stops_while_it_is_killed(monkeypatch):
    """podman rm --force can fail with "container state improper: stopped" when a
    container exits between the stop signal and SIGKILL; the container is then
    stopped but still there. Removal must finish the job, not fail the suite."""
    from lab import hosts, podman

    present = {"shoplab-xx-app", "shoplab-xx-db"}
    calls: list[list[str]] = []

    def fake_run(args, *, check=True, **_):
        calls.append(list(args))
        if args[0] == "rm":
            names = [a for a in args if a.startswith("shoplab-")]
            if len(calls) == 1:  # the race: db is killed, app had already stopped
                present.discard("shoplab-xx-db")
                result = subprocess.CompletedProcess(args, 2, "", "container state improper")
            else:
                present.difference_update(names)
                result = subprocess.CompletedProcess(args, 0, "", "")
            if check and result.returncode:
                raise podman.PodmanError(result.stderr)
            return result
        raise AssertionError(f"unexpected podman call {args}")

    monkeypatch.setattr(podman, "run", fake_run)
    monkeypatch.setattr(podman, "exists", lambda kind, name: name in present)
    monkeypatch.setattr(
        podman, "containers_with_label", lambda label: [{"Names": [n]} for n in sorted(present)]
    )
    monkeypatch.setattr(podman, "networks_with_label", lambda label: [])

    removed = hosts.remove_all(LabSettings(name="xx"))

    assert present == set()
    assert sorted(removed["containers"]) == ["shoplab-xx-app", "shoplab-xx-db"]
    assert calls[-1][:1] == ["rm"] and "shoplab-xx-db" not in calls[-1]


def test_removing_the_lab_names_a_container_that_will_not_go(monkeypatch):
    from lab import hosts, podman

    def stuck(args, *, check=True, **_):
        result = subprocess.CompletedProcess(args, 2, "", "device or resource busy")
        if check:
            raise podman.PodmanError(result.stderr)
        return result

    monkeypatch.setattr(podman, "run", stuck)
    monkeypatch.setattr(podman, "exists", lambda kind, name: True)
    monkeypatch.setattr(
        podman, "containers_with_label", lambda label: [{"Names": ["shoplab-xx-db"]}]
    )
    monkeypatch.setattr(podman, "networks_with_label", lambda label: [])
    with pytest.raises(podman.PodmanError, match=r"shoplab-xx-db.*device or resource busy"):
        hosts.remove_all(LabSettings(name="xx"))


def test_make_test_drills_and_removes_the_lab_the_lab_session_builds():
    """scripts/run-test-suite.sh reuses the lab tests/lab/conftest.py builds (for the
    drills) and removes it afterwards: both must name the same lab."""
    from tests.lab.conftest import TEST_LAB_NAME, TEST_SUBNET_SHIFT

    script = (Path(__file__).resolve().parents[2] / "scripts" / "run-test-suite.sh").read_text()
    assert f"TEST_LAB_NAME={TEST_LAB_NAME}\n" in script
    assert f"TEST_LAB=(LAB_NAME=$TEST_LAB_NAME LAB_SUBNET_SHIFT={TEST_SUBNET_SHIFT})" in script
    assert 'rm -rf --one-file-system "lab/state/$TEST_LAB_NAME" ' in script
