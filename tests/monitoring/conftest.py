"""Fixtures of the monitoring tests.

`monitored_stack` starts, on free loopback ports, everything the rules and
dashboards read beside the root conftest's `running_shop` (the shop served by
its production command, seeded) and `payments_sandbox`: PostgreSQL with
postgres_exporter, Redis with redis_exporter, node_exporter, HAProxy (TLS in
front of the shop, and its Prometheus exporter), the blackbox exporter,
Alertmanager, and Prometheus configured from prometheus.yml.j2 with every rule
file loaded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from monitoring_services import (
    STARTUP_SECONDS,
    PostgresCluster,
    Service,
    alertmanager_argv,
    haproxy_config,
    start,
    wait_http,
    write_self_signed_pem,
)

from local_processes import free_port
from monitoring import MONITORING_DIR, RULES_DIR
from monitoring.prometheus_config import PUBLIC_PROBE_PATH, render


@dataclass
class MonitoredStack:
    prometheus_url: str
    alertmanager_url: str
    shop_url: str
    config: dict[str, Any]

    def query(self, expr: str) -> dict[str, Any]:
        response = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr})
        return response.json()

    def metric_names(self) -> set[str]:
        response = httpx.get(f"{self.prometheus_url}/api/v1/label/__name__/values")
        response.raise_for_status()
        return set(response.json()["data"])


def _drive_shop(shop_url: str) -> None:
    """A few requests, so that the request counter and histogram have series."""
    with httpx.Client(base_url=shop_url, timeout=10) as client:
        client.get("/api/products", params={"page_size": 2})
        client.get("/api/categories")
        client.get("/api/products/NO-SUCH-SKU")
        client.post("/api/checkout", json={})


@pytest.fixture(scope="session")
def monitored_stack(
    tmp_path_factory: pytest.TempPathFactory, running_shop: Any, payments_sandbox: Any
) -> Iterator[MonitoredStack]:
    workdir = tmp_path_factory.mktemp("monitored-stack")
    services: list[Service] = []
    postgres = PostgresCluster(free_port())
    try:
        # --- the data tier ------------------------------------------------------------
        postgres.start(workdir)
        slot = postgres.psql("SELECT pg_create_physical_replication_slot('standby_b')")
        assert slot.returncode == 0, slot.stderr
        pg_exporter_port = free_port()
        pg_exporter = start(
            "postgres-exporter",
            [
                "prometheus-postgres-exporter",
                f"--web.listen-address=127.0.0.1:{pg_exporter_port}",
                f"--extend.query-path={MONITORING_DIR / 'exporters/postgres_exporter_queries.yml'}",
            ],
            workdir,
            env={"DATA_SOURCE_NAME": postgres.dsn},
        )
        services.append(pg_exporter)

        redis_port = free_port()
        redis = start(
            "redis",
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""],
            workdir,
        )
        services.append(redis)
        redis_exporter_port = free_port()
        redis_exporter = start(
            "redis-exporter",
            [
                "prometheus-redis-exporter",
                "-web.listen-address",
                f"127.0.0.1:{redis_exporter_port}",
                "-redis.addr",
                f"redis://127.0.0.1:{redis_port}",
            ],
            workdir,
        )
        services.append(redis_exporter)

        node_exporter_port = free_port()
        node_exporter = start(
            "node-exporter",
            ["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{node_exporter_port}"],
            workdir,
        )
        services.append(node_exporter)

        # --- the app tier: the root conftest's seeded shop and payments sandbox ----------
        shop_url = running_shop.url
        shop_port = int(shop_url.rsplit(":", 1)[1])
        sandbox_port = int(payments_sandbox.url.rsplit(":", 1)[1])
        _drive_shop(shop_url)

        # --- the edge: TLS in front of the shop, probed from outside ----------------------
        cert, bundle = write_self_signed_pem(workdir)
        tls_port, haproxy_metrics_port = free_port(), free_port()
        haproxy_cfg = workdir / "haproxy.cfg"
        haproxy_cfg.write_text(
            haproxy_config(
                tls_port=tls_port,
                metrics_port=haproxy_metrics_port,
                bundle=bundle,
                backend=f"127.0.0.1:{shop_port}",
            ),
            encoding="utf-8",
        )
        haproxy = start("haproxy", ["haproxy", "-db", "-f", str(haproxy_cfg)], workdir)
        services.append(haproxy)

        blackbox_port = free_port()
        blackbox = start(
            "blackbox-exporter",
            [
                "prometheus-blackbox-exporter",
                f"--web.listen-address=127.0.0.1:{blackbox_port}",
                f"--config.file={MONITORING_DIR / 'blackbox/blackbox.yml'}",
            ],
            workdir,
            # The probe verifies the edge's certificate against this trust store.
            env={"SSL_CERT_FILE": str(cert)},
        )
        services.append(blackbox)

        # --- the mgmt tier --------------------------------------------------------------
        alertmanager_port = free_port()
        alertmanager = start("alertmanager", alertmanager_argv(workdir, alertmanager_port), workdir)
        services.append(alertmanager)

        loopback = "127.0.0.1"
        prometheus_port = free_port()
        variables: dict[str, Any] = {
            "scrape_targets": {
                "shop": [f"{loopback}:{shop_port}"],
                "haproxy": [f"{loopback}:{haproxy_metrics_port}"],
                "node": [f"{loopback}:{node_exporter_port}"],
                "postgres": [f"{loopback}:{pg_exporter_port}"],
                "redis": [f"{loopback}:{redis_exporter_port}"],
                "partners": [f"{loopback}:{sandbox_port}"],
            },
            "target_zones": {loopback: "a"},
            "alertmanager_targets": [f"{loopback}:{alertmanager_port}"],
            "prometheus_self": f"{loopback}:{prometheus_port}",
            "blackbox_exporter": f"{loopback}:{blackbox_port}",
            "public_url": f"https://localhost:{tls_port}{PUBLIC_PROBE_PATH}",
            "runbook_base_url": "https://example.org/runbooks",
            "environment_name": "test",
            "scrape_interval": "1s",
            "evaluation_interval": "1s",
            "scrape_timeout": "1s",
            "rule_files": [str(RULES_DIR / "*.rules.yml")],
        }
        config_file = workdir / "prometheus.yml"
        config_file.write_text(render(variables), encoding="utf-8")
        prometheus = start(
            "prometheus",
            [
                "prometheus",
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
            ],
            workdir,
        )
        services.append(prometheus)
        prometheus_url = f"http://127.0.0.1:{prometheus_port}"
        for service, url in (
            (pg_exporter, f"http://127.0.0.1:{pg_exporter_port}/metrics"),
            (redis_exporter, f"http://127.0.0.1:{redis_exporter_port}/metrics"),
            (node_exporter, f"http://127.0.0.1:{node_exporter_port}/metrics"),
            (haproxy, f"http://127.0.0.1:{haproxy_metrics_port}/metrics"),
            (blackbox, f"http://127.0.0.1:{blackbox_port}/metrics"),
            (alertmanager, f"http://127.0.0.1:{alertmanager_port}/-/ready"),
            (prometheus, f"{prometheus_url}/-/ready"),
        ):
            wait_http(service, url)
        stack = MonitoredStack(
            prometheus_url=prometheus_url,
            alertmanager_url=f"http://127.0.0.1:{alertmanager_port}",
            shop_url=shop_url,
            config=variables,
        )
        _wait_for_scrapes(stack, prometheus)
        yield stack
    finally:
        for service in reversed(services):
            service.stop()
        postgres.stop()


def _wait_for_scrapes(stack: MonitoredStack, prometheus: Service) -> None:
    """Until every target has been scraped (up or not) and every rule evaluated once."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        targets = httpx.get(f"{stack.prometheus_url}/api/v1/targets").json()["data"]
        rules = httpx.get(f"{stack.prometheus_url}/api/v1/rules").json()["data"]["groups"]
        scraped = all(t["health"] != "unknown" for t in targets["activeTargets"])
        evaluated = all(rule["health"] != "unknown" for g in rules for rule in g["rules"])
        if targets["activeTargets"] and scraped and evaluated:
            # Counters need two samples before rate() has a value.
            time.sleep(3)
            return
        time.sleep(0.5)
    raise RuntimeError(f"Prometheus did not scrape every target:\n{prometheus.output()}")
