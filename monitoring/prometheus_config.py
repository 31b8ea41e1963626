"""Render monitoring/prometheus/prometheus.yml.j2 with targets taken from the topology.

The lab's Ansible monitoring role templates the same file with the same
variables (see monitoring/README.md); this module is the reference renderer
the tests use, and a CLI for a quick look:

    python -m monitoring.prometheus_config                 # the lab's config on stdout
    python -m monitoring.prometheus_config -o prometheus.yml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import jinja2

import topology
from monitoring import MONITORING_DIR
from monitoring import config as monitoring_config

TEMPLATE_FILE = MONITORING_DIR / "prometheus" / "prometheus.yml.j2"
REQUIRED_VARIABLES = (
    "scrape_targets",
    "alertmanager_targets",
    "public_url",
    "blackbox_exporter",
    "runbook_base_url",
)
# Prometheus reaches its own and Alertmanager's web server over HTTPS (verified with
# web_ca_file) and logs in (web_username, web_password_file) when these are given.
WEB_CLIENT_VARIABLES = ("web_ca_file", "web_username", "web_password_file")
# What the public probe asks for: a catalog page, so it passes only when the edge, an app
# instance and the catalog's storage all answer (the shop serves no HTML page at /).
PUBLIC_PROBE_PATH = "/api/products?page_size=1"


def variables_for(
    hosts_by_tier: dict[str, list[str]],
    *,
    zones: dict[str, str],
    net: topology.Topology | None = None,
    environment: str = "lab",
    runbook_base_url: str | None = None,
) -> dict[str, Any]:
    """The template's variables for one inventory (tier -> host names, host -> zone).

    Prometheus, Alertmanager and the blackbox exporter run on the first mgmt
    host; the public URL is a catalog page through the first dmz host's HTTPS. The
    runbook base defaults to monitoring/config.yml's `runbook_base_url`.
    """
    net = net or topology.load()
    mgmt = sorted(hosts_by_tier.get("mgmt", []))
    dmz = sorted(hosts_by_tier.get("dmz", []))
    if not mgmt or not dmz:
        raise ValueError("the inventory needs a mgmt host (monitoring) and a dmz host (the edge)")
    monitor = mgmt[0]
    return {
        "scrape_targets": net.scrape_targets(hosts_by_tier),
        "scrape_paths": {job.job: job.path for job in net.scrape_jobs},
        "scrape_schemes": net.scrape_schemes(),
        "target_zones": zones,
        "alertmanager_targets": [f"{monitor}:{net.port('alertmanager')}"],
        "prometheus_self": f"localhost:{net.port('prometheus')}",
        "blackbox_exporter": f"localhost:{net.port('blackbox_exporter')}",
        "public_url": f"https://{dmz[0]}{PUBLIC_PROBE_PATH}",
        "environment_name": environment,
        "runbook_base_url": runbook_base_url or monitoring_config.default().runbook_base_url,
    }


def lab_variables(net: topology.Topology | None = None) -> dict[str, Any]:
    net = net or topology.load()
    zones = {name: host.zone for name, host in net.lab.hosts.items() if host.zone}
    return variables_for(net.lab_hosts_by_tier(), zones=zones, net=net)


def render(variables: dict[str, Any], template: Path = TEMPLATE_FILE) -> str:
    missing = [name for name in REQUIRED_VARIABLES if name not in variables]
    if missing:
        raise ValueError(f"prometheus.yml.j2 needs the variables: {', '.join(missing)}")
    if variables.get("web_username"):
        unmet = [name for name in ("web_password_file", "web_ca_file") if not variables.get(name)]
        if unmet:
            raise ValueError(
                f"basic auth (web_username) needs {', '.join(unmet)}: "
                "the password is sent over verified TLS only"
            )
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template.parent),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - renders YAML, not HTML
    )
    return environment.get_template(template.name).render(**variables)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render prometheus.yml for the lab topology.")
    parser.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    parser.add_argument(
        "--runbook-base-url",
        default=monitoring_config.default().runbook_base_url,
        help="where runbooks/<Alert>.md is published (default: config.yml's runbook_base_url)",
    )
    args = parser.parse_args(argv)
    variables = lab_variables()
    variables["runbook_base_url"] = args.runbook_base_url
    text = render(variables)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
