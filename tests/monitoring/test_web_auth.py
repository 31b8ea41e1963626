"""Prometheus and Alertmanager behind HTTPS and basic auth, as the monitoring role sets them up.

The web config is the role's own template (playbooks/roles/monitoring/templates/web.yml.j2)
with the role's bcrypt filter, checked by promtool; prometheus.yml is the repository's
template with the web_* variables the role passes. Real Prometheus and Alertmanager
(Debian's, the versions the hosts run) then prove both ends: the servers refuse what they
must, and Prometheus still scrapes itself and Alertmanager and sends it alerts.
"""

from __future__ import annotations

import json
import ssl
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jinja2
import pytest
import yaml
from monitoring_services import STARTUP_SECONDS, Service, alertmanager_argv, run, start

from local_processes import free_port
from monitoring import RULES_DIR, prometheus_config
from tests.certificates import issue_ca_and_server_cert

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
WEB_TEMPLATE = PLAYBOOKS / "roles" / "monitoring" / "templates" / "web.yml.j2"
sys.path.insert(0, str(PLAYBOOKS / "filter_plugins"))

import web_auth_filters  # noqa: E402

USER = "operator"
PASSWORD = "a-test-password-of-32-characters"
HOST = "mon"


def render_web_config(cert: Path, key: Path, password: str = PASSWORD) -> str:
    """The role's web.yml.j2 with the Ansible filters it uses (to_json, bcrypt_hash)."""
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    environment.filters["to_json"] = json.dumps
    environment.filters["bcrypt_hash"] = web_auth_filters.bcrypt_hash
    return environment.from_string(WEB_TEMPLATE.read_text(encoding="utf-8")).render(
        ansible_managed="test",
        inventory_hostname=HOST,
        monitoring_web_cert_file=str(cert),
        monitoring_web_key_file=str(key),
        monitoring_web_username=USER,
        monitoring_web_password=password,
        monitoring_web_bcrypt_cost=4,
    )


@dataclass
class SecuredStack:
    ca_file: Path
    prometheus_url: str
    alertmanager_url: str
    alertmanager_target: str

    def client(self, auth: tuple[str, str] | None = (USER, PASSWORD)) -> httpx.Client:
        verify = ssl.create_default_context(cafile=str(self.ca_file))
        return httpx.Client(verify=verify, auth=auth, timeout=10)


@pytest.fixture(scope="module")
def secured_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredStack]:
    workdir = tmp_path_factory.mktemp("web-auth")
    ca_file, cert, key = issue_ca_and_server_cert(workdir)
    web_config = workdir / "web.yml"
    web_config.write_text(render_web_config(cert, key), encoding="utf-8")
    password_file = workdir / "password"
    password_file.write_text(PASSWORD + "\n", encoding="utf-8")  # as the lab's lookup writes it
    services: list[Service] = []
    try:
        alertmanager_port, prometheus_port = free_port(), free_port()
        alertmanager = start(
            "alertmanager",
            alertmanager_argv(workdir, alertmanager_port, web_config=web_config),
            workdir,
        )
        services.append(alertmanager)
        # the certificate names localhost and 127.0.0.1, as the role's names the host
        alertmanager_target = f"localhost:{alertmanager_port}"
        variables: dict[str, Any] = {
            **prometheus_config.lab_variables(),
            "scrape_targets": {},
            "alertmanager_targets": [alertmanager_target],
            "prometheus_self": f"localhost:{prometheus_port}",
            "scrape_interval": "1s",
            "evaluation_interval": "1s",
            "scrape_timeout": "1s",
            "rule_files": [str(RULES_DIR / "meta.rules.yml")],
            "web_ca_file": str(ca_file),
            "web_username": USER,
            "web_password_file": str(password_file),
        }
        config_file = workdir / "prometheus.yml"
        config_file.write_text(prometheus_config.render(variables), encoding="utf-8")
        prometheus = start(
            "prometheus",
            [
                "prometheus",
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
                f"--web.config.file={web_config}",
            ],
            workdir,
        )
        services.append(prometheus)
        stack = SecuredStack(
            ca_file=ca_file,
            prometheus_url=f"https://127.0.0.1:{prometheus_port}",
            alertmanager_url=f"https://127.0.0.1:{alertmanager_port}",
            alertmanager_target=alertmanager_target,
        )
        for service, url in (
            (alertmanager, f"{stack.alertmanager_url}/-/ready"),
            (prometheus, f"{stack.prometheus_url}/-/ready"),
        ):
            _wait_authenticated(service, url, stack)
        yield stack
    finally:
        for service in reversed(services):
            service.stop()


def _wait_authenticated(service: Service, url: str, stack: SecuredStack) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    with stack.client() as client:
        while time.monotonic() < deadline:
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if service.process.poll() is not None:
                break
            time.sleep(0.2)
    raise RuntimeError(f"{service.name} not ready at {url}:\n{service.output()}")


def test_the_roles_web_config_passes_promtool_and_is_the_same_every_run(tmp_path: Path) -> None:
    _, cert, key = issue_ca_and_server_cert(tmp_path)
    text = render_web_config(cert, key)
    assert text == render_web_config(cert, key), "a second converge would rewrite the file"
    assert PASSWORD not in text
    (tmp_path / "web.yml").write_text(text, encoding="utf-8")
    result = run(["promtool", "check", "web-config", str(tmp_path / "web.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(text)
    assert config["tls_server_config"] == {
        "cert_file": str(cert),
        "key_file": str(key),
        "min_version": "TLS12",
    }
    assert set(config["basic_auth_users"]) == {USER}
    assert render_web_config(cert, key, "another password, rotated") != text


@pytest.mark.parametrize("service", ["prometheus", "alertmanager"])
def test_plain_http_and_wrong_credentials_are_refused(secured_stack, service: str) -> None:
    url = getattr(secured_stack, f"{service}_url")
    api = "/api/v1/status/buildinfo" if service == "prometheus" else "/api/v2/status"
    plain = httpx.get(url.replace("https://", "http://") + api, timeout=10)
    assert plain.status_code == 400, "an HTTPS server answers plain HTTP with 400 only"
    for auth in (None, (USER, "wrong"), ("someone", PASSWORD)):
        with secured_stack.client(auth) as client:
            assert client.get(url + api).status_code == 401, auth
    with secured_stack.client() as client:
        assert client.get(url + api).status_code == 200


def test_prometheus_scrapes_itself_and_alertmanager_and_alerts_it(secured_stack) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    with secured_stack.client() as client:
        while True:
            targets = client.get(secured_stack.prometheus_url + "/api/v1/targets").json()
            health = {
                t["labels"]["job"]: (t["health"], t["lastError"])
                for t in targets["data"]["activeTargets"]
                if t["labels"]["job"] in ("prometheus", "alertmanager")
            }
            if {h for h, _ in health.values()} == {"up"} and len(health) == 2:
                break
            assert time.monotonic() < deadline, health
            time.sleep(0.5)
        discovered = client.get(secured_stack.prometheus_url + "/api/v1/alertmanagers").json()
    urls = [a["url"] for a in discovered["data"]["activeAlertmanagers"]]
    assert urls == [f"https://{secured_stack.alertmanager_target}/api/v2/alerts"]
