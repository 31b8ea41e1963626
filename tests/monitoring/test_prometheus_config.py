"""prometheus.yml.j2: valid for promtool, targets taken from the topology, and every job
that a rule or dashboard names is a job of the configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from monitoring_services import run
from monitoring_support import (
    RULES_DIR,
    alerting_rules,
    all_rules,
    dashboard_queries,
    selectors,
)

import topology
from monitoring import config as monitoring_config
from monitoring import prometheus_config


def _rendered(tmp_path: Path, **overrides: Any) -> tuple[Path, dict[str, Any]]:
    variables = {
        **prometheus_config.lab_variables(),
        "rule_files": [str(RULES_DIR / "*.rules.yml")],
        **overrides,
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(prometheus_config.render(variables), encoding="utf-8")
    return path, yaml.safe_load(path.read_text(encoding="utf-8"))


def _jobs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_promtool_accepts_the_lab_config_with_every_rule_file(tmp_path: Path) -> None:
    path, _ = _rendered(tmp_path)
    result = run(["promtool", "check", "config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    # promtool read the rule files through the config too.
    assert "rules found" in result.stdout


def test_scrape_targets_come_from_the_topology(tmp_path: Path) -> None:
    _, config = _rendered(tmp_path)
    net = topology.load()
    expected = net.scrape_targets(net.lab_hosts_by_tier())
    jobs = _jobs(config)
    for job, targets in expected.items():
        scraped = [t for group in jobs[job]["static_configs"] for t in group["targets"]]
        assert scraped == targets, job
        path = next(j.path for j in net.scrape_jobs if j.job == job)
        assert jobs[job]["metrics_path"] == path
    assert jobs["shop"]["static_configs"], "the lab has app hosts to scrape"


def test_scrape_schemes_come_from_the_topology(tmp_path: Path) -> None:
    _, config = _rendered(tmp_path)
    jobs = _jobs(config)
    for job in topology.load().scrape_jobs:
        assert jobs[job.job].get("scheme", "http") == job.scheme, job.job
    assert jobs["shop"]["scheme"] == "https", "the app servers speak HTTPS only"
    readiness = next(
        r["replacement"]
        for r in jobs["shop_readiness"]["relabel_configs"]
        if r.get("target_label") == "__param_target"
    )
    assert readiness == "https://${1}/readyz"


def test_app_targets_carry_their_zone(tmp_path: Path) -> None:
    _, config = _rendered(tmp_path)
    net = topology.load()
    zones = {f"{name}:{net.port('app')}": h.zone for name, h in net.lab.hosts.items() if h.zone}
    for job in ("shop", "shop_readiness"):
        groups = _jobs(config)[job]["static_configs"]
        seen = {group["targets"][0]: group.get("labels", {}).get("zone") for group in groups}
        assert seen == zones, job
    assert set(zones.values()) >= {"a", "b"}, "the lab spreads the app over two zones"


def test_the_default_runbook_base_is_the_one_of_config_yml(tmp_path: Path) -> None:
    _, config = _rendered(tmp_path)
    assert config["global"]["external_labels"]["runbook_base_url"] == (
        monitoring_config.default().runbook_base_url
    )


def test_alerting_probes_and_runbook_base_come_from_the_variables(tmp_path: Path) -> None:
    _, config = _rendered(tmp_path, runbook_base_url="https://runbooks.example.net/shop")
    net = topology.load()
    assert config["global"]["external_labels"]["runbook_base_url"] == (
        "https://runbooks.example.net/shop"
    )
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == [f"mon:{net.port('alertmanager')}"]
    public = _jobs(config)["blackbox_public"]
    assert public["static_configs"][0]["targets"] == ["https://edge/api/products?page_size=1"]
    assert public["params"]["module"] == ["public_https"]
    assert public["relabel_configs"][-1]["replacement"] == (
        f"localhost:{net.port('blackbox_exporter')}"
    )


def test_missing_variable_is_named(tmp_path: Path) -> None:
    variables = prometheus_config.lab_variables()
    del variables["public_url"]
    with pytest.raises(ValueError, match="public_url"):
        prometheus_config.render(variables)


def test_an_inventory_without_a_monitoring_host_is_refused() -> None:
    with pytest.raises(ValueError, match="mgmt host"):
        prometheus_config.variables_for({"dmz": ["edge"], "app": ["app-a1"]}, zones={})


def test_every_job_a_rule_or_dashboard_names_is_scraped(tmp_path: Path) -> None:
    _, config = _rendered(tmp_path)
    jobs = set(_jobs(config))
    expressions = [rule["expr"] for rule in all_rules()] + [q[2] for q in dashboard_queries()]
    named = {s.job for expr in expressions for s in selectors(expr) if s.job}
    assert named, "rules select by job"
    assert named <= jobs, sorted(named - jobs)


def test_blackbox_modules_are_valid_and_used(tmp_path: Path) -> None:
    blackbox_file = prometheus_config.MONITORING_DIR / "blackbox" / "blackbox.yml"
    result = run(
        ["prometheus-blackbox-exporter", "--config.check", f"--config.file={blackbox_file}"]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    modules = set(yaml.safe_load(blackbox_file.read_text(encoding="utf-8"))["modules"])
    _, config = _rendered(tmp_path)
    used = {
        module
        for job in config["scrape_configs"]
        for module in job.get("params", {}).get("module", [])
    }
    assert used == modules


def test_alerts_only_name_labels_the_config_or_exporters_provide() -> None:
    """`zone` on app targets is the only label the config adds; alerts grouping by it exist."""
    zone_alerts = [r["alert"] for r in alerting_rules() if "zone" in r["expr"]]
    assert zone_alerts == ["ZoneDown"]


def _web_clients(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """How Prometheus reaches its own and Alertmanager's web server, in the three places."""
    jobs = _jobs(config)
    return {
        "prometheus job": jobs["prometheus"],
        "alertmanager job": jobs["alertmanager"],
        "alerting": config["alerting"]["alertmanagers"][0],
    }


def test_without_web_variables_prometheus_reaches_itself_and_alertmanager_in_plain_http(
    tmp_path: Path,
) -> None:
    """The local stacks of these tests run without TLS or auth."""
    _, config = _rendered(tmp_path)
    for where, client in _web_clients(config).items():
        assert client.get("scheme", "http") == "http", where
        assert "tls_config" not in client and "basic_auth" not in client, where


def test_with_web_variables_prometheus_uses_https_and_logs_in_from_a_file(tmp_path: Path) -> None:
    ca_file, password_file = tmp_path / "ca.crt", tmp_path / "password"
    ca_file.write_text("", encoding="utf-8")
    password_file.write_text("not read by promtool\n", encoding="utf-8")
    path, config = _rendered(
        tmp_path,
        web_ca_file=str(ca_file),
        web_username="operator",
        web_password_file=str(password_file),
    )
    for where, client in _web_clients(config).items():
        assert client["scheme"] == "https", where
        assert client["tls_config"] == {"ca_file": str(ca_file)}, where
        # the password stays in its file: never in prometheus.yml
        assert client["basic_auth"] == {
            "username": "operator",
            "password_file": str(password_file),
        }, where
    # the topology's jobs and the probes are not touched
    assert "basic_auth" not in _jobs(config)["shop"]
    assert "scheme" not in _jobs(config)["blackbox"]
    result = run(["promtool", "check", "config", "--syntax-only", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_basic_auth_needs_tls_and_a_password_file() -> None:
    variables = {**prometheus_config.lab_variables(), "web_username": "operator"}
    with pytest.raises(ValueError, match="web_password_file, web_ca_file"):
        prometheus_config.render(variables)
    variables["web_password_file"] = "/etc/prometheus/web/password"
    with pytest.raises(ValueError, match="web_ca_file"):
        prometheus_config.render(variables)
