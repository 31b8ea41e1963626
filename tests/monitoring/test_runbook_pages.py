"""The runbooks as the lab publishes them: rendered by the monitoring role's filter
(playbooks/filter_plugins/runbook_filters.py) and served by a real Prometheus from its
console templates, every alert's runbook_url opens its page and every link inside lands.

The lab test tests/lab/test_lab_runbook_links.py follows the same links on mon.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ansible.errors import AnsibleFilterError
from monitoring_services import start, wait_http
from monitoring_support import RULES_DIR, RUNBOOKS_DIR, alerting_rules

from local_processes import free_port
from monitoring import config as monitoring_config
from tests.runbook_links import alert_runbook_urls, assert_runbook_page, follow_links

PLAYBOOKS = RUNBOOKS_DIR.parent / "playbooks"
sys.path.insert(0, str(PLAYBOOKS / "filter_plugins"))

import runbook_filters  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("runbook-pages")
    consoles = workdir / "consoles" / "runbooks"
    consoles.mkdir(parents=True)
    (workdir / "console_libraries").mkdir()
    for path in RUNBOOKS_DIR.glob("*.md"):
        page = runbook_filters.runbook_page(path.read_text(encoding="utf-8"), path.stem)
        (consoles / path.name).write_text(page, encoding="utf-8")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/consoles/runbooks"
    config = workdir / "prometheus.yml"
    config.write_text(
        f"global:\n  external_labels:\n    runbook_base_url: {base_url}\n"
        f"rule_files: ['{RULES_DIR}/*.rules.yml']\n",
        encoding="utf-8",
    )
    service = start(
        "prometheus",
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.console.templates={workdir / 'consoles'}",
            f"--web.console.libraries={workdir / 'console_libraries'}",
        ],
        workdir,
    )
    try:
        wait_http(service, f"http://127.0.0.1:{port}/-/ready")
        yield base_url
    finally:
        service.stop()


def test_every_alerts_runbook_url_opens_its_page(served: str) -> None:
    prometheus = served.removesuffix("/consoles/runbooks")
    with httpx.Client(timeout=10) as client:
        urls = alert_runbook_urls(client, prometheus, served)
        assert set(urls) == {rule["alert"] for rule in alerting_rules()}
        for alert, url in sorted(urls.items()):
            assert_runbook_page(client.get(url), alert)


def test_every_link_inside_a_served_runbook_lands(served: str) -> None:
    with httpx.Client(timeout=10) as client:
        followed = sum(
            follow_links(client, f"{served}/{path.name}")
            for path in sorted(RUNBOOKS_DIR.glob("*.md"))
        )
    assert followed >= len(alerting_rules()), f"only {followed} links followed"


def test_a_runbook_may_quote_prometheus_templates(tmp_path: Path) -> None:
    """Prometheus expands console files as Go templates; a quoted `{{ $labels.x }}` must
    reach the reader as written, not be run (or break the page)."""
    markdown = "# Quoting\n\nThe annotation reads `{{ $labels.instance }} is down`.\n"
    served_page = _serve_once(runbook_filters.runbook_page(markdown, "Quoting"), tmp_path)
    assert "<code>{{ $labels.instance }} is down</code>" in served_page


def _serve_once(page: str, workdir: Path) -> str:
    consoles = workdir / "once" / "consoles"
    consoles.mkdir(parents=True)
    (workdir / "once" / "libraries").mkdir()
    (consoles / "Quoting.md").write_text(page, encoding="utf-8")
    port = free_port()
    config = workdir / "once" / "prometheus.yml"
    config.write_text("global: {}\n", encoding="utf-8")
    service = start(
        "prometheus-once",
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'once' / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.console.templates={consoles}",
            f"--web.console.libraries={workdir / 'once' / 'libraries'}",
        ],
        workdir,
    )
    try:
        wait_http(service, f"http://127.0.0.1:{port}/-/ready")
        answer = httpx.get(f"http://127.0.0.1:{port}/consoles/Quoting.md", timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.text
    finally:
        service.stop()


def test_heading_anchors_are_githubs() -> None:
    assert runbook_filters.heading_slug("Reaching Prometheus and Alertmanager") == (
        "reaching-prometheus-and-alertmanager"
    )
    assert runbook_filters.heading_slug("On call: silencing, escalating") == (
        "on-call-silencing-escalating"
    )


def test_an_empty_runbook_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="Empty is empty"):
        runbook_filters.runbook_page("  \n", "Empty")


def test_the_lab_and_aws_name_a_runbook_base_and_the_role_has_none() -> None:
    defaults = (PLAYBOOKS / "roles" / "monitoring" / "defaults" / "main.yml").read_text()
    assert 'monitoring_runbook_base_url: ""' in defaults
    assert monitoring_config.load().runbook_base_url not in defaults  # the placeholder answers 404
    for inventory in ("lab/group_vars/all.yml", "aws/group_vars/all/main.yml"):
        text = (PLAYBOOKS / "inventories" / inventory).read_text()
        assert "monitoring_runbook_base_url:" in text, inventory
