"""Each host as its roles left it (pytest-testinfra over podman exec).

Packages, services enabled and running, listening sockets bound exactly where
they should be, file modes and owners, users.
"""

from __future__ import annotations

import httpx
import pytest

import topology

pytestmark = pytest.mark.lab

TOPO = topology.load()


def port(name: str) -> int:
    return TOPO.port(name)


def expected_listeners(host) -> set[str]:
    """Every TCP listener a host may have, as `ss` prints local addresses."""
    service = host.service_address
    listeners = {"0.0.0.0:22", "[::]:22"}
    if host.tier != "public":
        listeners.add(f"{service}:{port('node_exporter')}")
    by_tier = {
        "dmz": {
            f"0.0.0.0:{port('http')}",
            f"0.0.0.0:{port('https')}",
            f"{service}:{port('haproxy_metrics')}",
        },
        "app": {f"{service}:{port('app')}"},
        "data": {
            f"{service}:{port(name)}"
            for name in ("postgres", "postgres_exporter", "redis", "redis_exporter")
        },
        "mgmt": {
            f"*:{port('prometheus')}",
            f"*:{port('alertmanager')}",
            f"127.0.0.1:{port('blackbox_exporter')}",
            f"127.0.0.1:{port('alert_sink')}",
        },
        "partners": {
            f"{service}:{port(name)}"
            for name in ("payments", "couriers", "smtp", "partners_metrics")
        },
    }
    return listeners | by_tier.get(host.tier, set())


def listening(infra_host) -> set[str]:
    out = infra_host.check_output("ss -Hltn")
    return {line.split()[3] for line in out.splitlines() if line.strip()}


def test_listening_sockets_are_exactly_where_they_should_be(lab):
    for name, host in lab.hosts.items():
        assert listening(lab.testinfra_host(name)) == expected_listeners(host), name


def test_common_baseline(lab):
    for name in lab.hosts:
        h = lab.testinfra_host(name)
        for package in ("chrony", "unattended-upgrades", "sudo", "nftables"):
            assert h.package(package).is_installed, (name, package)
        for service in ("ssh", "chrony", "unattended-upgrades", "nftables"):
            assert h.service(service).is_enabled, (name, service)
            assert h.service(service).is_running, (name, service)
        assert h.check_output("systemctl is-system-running") == "running", name
        sshd = h.check_output("sshd -T")
        assert "permitrootlogin no" in sshd
        assert "passwordauthentication no" in sshd
        assert "allowusers admin" in sshd
        sudoers = h.file("/etc/sudoers.d/50-admins")
        assert (sudoers.user, sudoers.mode) == ("root", 0o440)
        admin = h.user("admin")
        assert admin.exists and admin.shell == "/bin/bash"
        assert h.file("/etc/systemd/journald.conf.d/50-limits.conf").contains("SystemMaxUse=")
        assert h.file("/etc/apt/apt.conf.d/20auto-upgrades").contains('Unattended-Upgrade "1"')


def test_firewall_default_deny(lab):
    for name in lab.hosts:
        h = lab.testinfra_host(name)
        ruleset = h.check_output("nft list ruleset")
        assert "hook input priority filter; policy drop;" in ruleset, name
        assert "hook forward priority filter; policy drop;" in ruleset, name
        conf = h.file("/etc/nftables.conf")
        assert (conf.user, conf.mode) == ("root", 0o600)


def test_node_exporter(lab):
    for host in lab.hosts.values():
        h = lab.testinfra_host(host.name)
        service = h.service("prometheus-node-exporter")
        expected = host.tier != "public"
        assert service.is_running == expected, host.name
        assert service.is_enabled == expected, host.name


def test_postgresql(lab):
    (db,) = lab.hosts_in("data")
    h = lab.testinfra_host(db.name)
    assert h.service("postgresql@15-main").is_running
    assert h.service("prometheus-postgres-exporter").is_running
    key = h.file("/etc/ssl/private/postgresql.key")
    assert (key.user, key.group, key.mode) == ("root", "postgres", 0o640)
    psql = f"psql -p {port('postgres')} -XAt -c"
    assert h.check_output(f"runuser -u postgres -- {psql} 'show ssl'") == "on"
    assert h.check_output(f"runuser -u postgres -- {psql} 'show shared_buffers'") == "128MB"
    hba = [
        line.split()
        for line in h.file("/etc/postgresql/15/main/pg_hba.conf").content_string.splitlines()
        if line.startswith("host")
    ]
    app_sources = {
        f"{address}/32" for app in lab.hosts_in("app") for address in app.addresses.values()
    }
    assert {line[0] for line in hba} == {"hostssl"}
    assert {line[3] for line in hba} == app_sources


def test_backup_restores(lab):
    (db,) = lab.hosts_in("data")
    h = lab.testinfra_host(db.name)
    timer = h.service("shop-db-backup.timer")
    assert timer.is_enabled and timer.is_running
    h.run_test("systemctl start shop-db-backup.service")
    check = h.file("/var/backups/postgresql/last-restore-check")
    assert check.exists
    tables = int(check.content_string.split("tables=")[1])
    assert tables > 0
    assert check.user == "postgres"


def test_redis(lab):
    (db,) = lab.hosts_in("data")
    h = lab.testinfra_host(db.name)
    assert h.service("redis-server").is_running
    assert h.service("prometheus-redis-exporter").is_running
    conf = h.file("/etc/redis/redis.conf")
    assert (conf.user, conf.mode) == ("redis", 0o640)
    cli = f"redis-cli -h {db.service_address} -p {port('redis')}"
    tls = "--tls --cacert /usr/local/share/ca-certificates/shop-internal-ca.crt"
    plain = h.run(f"{cli} ping")  # TLS only: a plain client gets no answer
    assert plain.rc != 0 or "PONG" not in plain.stdout, plain
    refused = h.run(f"{cli} {tls} ping")
    assert "NOAUTH" in refused.stdout + refused.stderr
    key = h.file("/etc/redis/tls/redis.key")
    assert (key.user, key.group, key.mode) == ("root", "redis", 0o640)
    exporter = h.check_output(
        f"curl -s http://{db.service_address}:{port('redis_exporter')}/metrics"
    )
    assert "\nredis_up 1" in exporter  # the exporter reaches Redis over TLS
    # the shop fills the cache over TLS: a catalog read through the edge leaves its keys
    with httpx.Client(verify=lab.tls(), timeout=10) as client:
        assert client.get(lab.url("edge_https") + "api/categories").status_code == 200
    password = (lab.settings.state_dir / "secrets" / "redis").read_text().strip()
    keys = h.check_output(f"REDISCLI_AUTH={password} {cli} {tls} --scan --pattern 'shop:catalog:*'")
    assert keys.strip(), "no catalog key in Redis after a catalog read"


def test_edge(lab):
    (edge,) = lab.hosts_in("dmz")
    h = lab.testinfra_host(edge.name)
    assert h.service("haproxy").is_enabled and h.service("haproxy").is_running
    bundle = h.file("/etc/haproxy/edge.pem")
    assert (bundle.user, bundle.group, bundle.mode) == ("root", "haproxy", 0o640)
    metrics = h.check_output(
        f"curl -s http://{edge.service_address}:{port('haproxy_metrics')}/metrics"
    )
    for app in lab.hosts_in("app"):
        assert f'haproxy_server_status{{proxy="shop",server="{app.name}",state="UP"}} 1' in metrics


def test_shop_and_sandboxes(lab):
    for app in lab.hosts_in("app"):
        h = lab.testinfra_host(app.name)
        assert h.service("shop").is_enabled and h.service("shop").is_running
        env = h.file("/etc/shop/shop.env")
        assert (env.user, env.group, env.mode) == ("root", "shop", 0o640)
        assert h.user("shop").shell == "/usr/sbin/nologin"
        owners = h.check_output("ps -o user= -C gunicorn").split()
        assert owners and set(owners) == {"shop"}
        # HTTPS only, verified against the lab CA in the host's trust store
        origin = f"{app.service_address}:{port('app')}"
        ready = h.check_output(f"curl -sS https://{origin}/readyz")
        assert '"status":"ready"' in ready
        assert h.run(f"curl -sS -o /dev/null http://{origin}/readyz").rc != 0
        key = h.file("/etc/shop/tls/shop.key")
        assert (key.user, key.group, key.mode) == ("root", "shop", 0o640)
    (partners,) = lab.hosts_in("partners")
    h = lab.testinfra_host(partners.name)
    assert h.service("shop-sandboxes").is_enabled and h.service("shop-sandboxes").is_running
    assert h.file("/etc/shop/sandboxes.env").mode == 0o640
    # the shop reaches its partners over verified TLS only (as an app server sees them)
    app = lab.testinfra_host(lab.hosts_in("app")[0].name)
    for name in ("payments", "couriers"):
        origin = f"{partners.name}:{port(name)}"
        assert app.run(f"curl -sS -o /dev/null https://{origin}/healthz").rc == 0, name
        assert app.run(f"curl -sS -o /dev/null http://{origin}/healthz").rc != 0, name
    smtp = app.run(
        f"openssl s_client -starttls smtp -connect {partners.name}:{port('smtp')} "
        f"-verify_hostname {partners.name} -verify_return_error -brief </dev/null"
    )
    assert smtp.rc == 0 and "Verification: OK" in smtp.stdout + smtp.stderr, smtp


def test_monitoring_services(lab):
    (mon,) = lab.hosts_in("mgmt")
    h = lab.testinfra_host(mon.name)
    for service in ("prometheus", "prometheus-alertmanager", "prometheus-blackbox-exporter"):
        assert h.service(service).is_enabled and h.service(service).is_running, service
    rules = h.check_output("ls /etc/prometheus/rules").split()
    assert rules and all(name.endswith(".rules.yml") for name in rules)
    assert h.file("/etc/prometheus/prometheus.yml").contains("job_name: shop")
    # HTTPS and basic auth: what only the prometheus user (the group) may read
    web = "/etc/prometheus/web"
    for path, mode in (
        (web, 0o750),
        (f"{web}/web.yml", 0o640),
        (f"{web}/monitoring.key", 0o640),
        (f"{web}/password", 0o640),
    ):
        f = h.file(path)
        assert (f.user, f.group, f.mode) == ("root", "prometheus", mode), path
    password = lab.monitoring.password()
    assert h.file(f"{web}/password").content_string == password
    assert not h.file(f"{web}/web.yml").contains(password), "only the bcrypt hash"
    assert h.run(f"promtool check web-config {web}/web.yml").rc == 0
    for service in ("prometheus", "prometheus-alertmanager"):
        args = h.file(f"/etc/default/{service}").content_string
        assert f"--web.config.file={web}/web.yml" in args, service
