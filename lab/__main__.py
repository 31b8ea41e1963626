"""Command line: python -m lab {up,converge,shell,status,pages,down,report,fault,prune-images}.

Settings come from the environment (see lab/settings.py): LAB_NAME,
LAB_SUBNET_SHIFT, LAB_PORT_<PUBLISHED>.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from . import (
    converge,
    hosts,
    image,
    inventory,
    monitoring_access,
    operator_shell,
    pages,
    podman,
    sandbox_knobs,
    status,
)
from .layout import plan
from .podman import PodmanError
from .settings import LabSettings, SettingsError, from_env


def cmd_up(settings: LabSettings) -> int:
    started = time.monotonic()
    tag, built = image.ensure()
    print(f"image {tag} ({'built' if built else 'cached'})")
    created = hosts.ensure_networks(settings)
    print(f"networks: {len(created)} created")
    planned = hosts.ensure_hosts(settings, tag)
    path = inventory.write(settings, planned)
    print(f"hosts: {', '.join(planned)} up; inventory {path}")
    print(f"lab up in {time.monotonic() - started:.0f} s")
    return 0


def cmd_converge(settings: LabSettings, idempotent: bool) -> int:
    first = converge.run_playbook(settings, "converge")
    if not first.succeeded:
        print(f"converge failed (log: {first.log})", file=sys.stderr)
        return 1
    print(f"converge: {first.changed} changed")
    client_files = monitoring_access.write_client_files(settings)
    print(f"monitoring client files: {', '.join(str(p) for p in client_files.values())}")
    operator_files = operator_shell.write(settings, plan(settings))
    print(f"operator shell: make lab-shell, or source {operator_files['env']}")
    if not idempotent:
        return 0
    second = converge.run_playbook(settings, "converge-again")
    if not second.succeeded:
        print(f"second converge failed (log: {second.log})", file=sys.stderr)
        return 1
    if second.changed:
        changed = {h: r.changed for h, r in second.recap.items() if r.changed}
        print(
            f"not idempotent: second converge changed {changed} (log: {second.log})",
            file=sys.stderr,
        )
        return 1
    print("second converge: 0 changed (idempotent)")
    return 0


def cmd_status(settings: LabSettings, as_json: bool) -> int:
    current = status.collect(settings)
    print(json.dumps(current, indent=2) if as_json else status.render_text(current))
    return 0


def cmd_pages(settings: LabSettings, filters: dict[str, str], as_json: bool) -> int:
    rows = pages.notifications(settings, **filters)
    print(json.dumps(rows, indent=2) if as_json else pages.render_text(rows))
    return 0


def cmd_report(settings: LabSettings) -> int:
    current = status.collect(settings)
    print(status.render_text(current))
    ca = settings.ca_file
    print("how to use it:")
    print(f"  lab CA (trust it to verify the edge, Prometheus and Alertmanager): {ca}")
    if "edge_https" in current["urls"]:
        print(f"  curl --cacert {ca} {current['urls']['edge_https']}api/products?page_size=3")
    print(f"  shop admin: admin@shop.example, password in {settings.secrets_dir / 'shop_admin'}")
    access = monitoring_access.for_lab(settings)
    print(
        f"  Prometheus and Alertmanager: user {access.username}, password in {access.password_file}"
    )
    urls = current["urls"]
    if "prometheus" in urls:
        curl_config = monitoring_access.curl_config_file(settings)
        print(f"  curl -K {curl_config} {urls['prometheus']}api/v1/alerts")
    if "alertmanager" in urls:
        http_config = monitoring_access.http_config_file(settings)
        print(
            f"  amtool --http.config.file={http_config}"
            f" --alertmanager.url={urls['alertmanager']} alert query"
        )
    print(
        "  ansible: ANSIBLE_CONFIG=playbooks/ansible.cfg .venv/bin/ansible-playbook"
        f" -i {settings.inventory_dir} playbooks/site.yml"
    )
    over = current["memory_pss_mib"] >= current["memory_budget_mib"]
    failed = [
        h["name"] for h in current["hosts"] if h.get("failed_units") or h["state"] != "running"
    ]
    print(
        "lab: "
        + ("NOT healthy: " + ", ".join(failed) if failed else "all hosts running, no failed units")
        + ("; memory OVER budget" if over else "")
    )
    return 1 if failed or over else 0


def cmd_fault(settings: LabSettings, knobs_args: list[str]) -> int:
    result = sandbox_knobs.run(settings, knobs_args)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


def cmd_down(settings: LabSettings) -> int:
    removed = hosts.remove_all(settings)
    print(f"removed containers: {', '.join(removed['containers']) or '-'}")
    print(f"removed networks: {', '.join(removed['networks']) or '-'}")
    print(f"unmounted log volumes: {', '.join(removed['log_volumes']) or '-'}")
    pruned = _prune_stale_images()
    print(f"removed stale base images: {', '.join(pruned) or '-'}; kept {image.tag()}")
    return 0


def _prune_stale_images() -> list[str]:
    """Base images of older recipes that no container uses any more."""
    return [
        ref for ref in image.stale_images() if podman.run(["rmi", ref], check=False).returncode == 0
    ]


def cmd_shell(settings: LabSettings, command: str | None) -> int:
    """The operator's shell (or one command in it): runbook commands run as written."""
    planned = plan(settings)
    if not all(podman.exists("container", settings.container(name)) for name in planned):
        print(f"lab: lab {settings.name} is not up: run make lab first", file=sys.stderr)
        return 2
    monitoring_access.write_client_files(settings)
    operator_shell.write(settings, planned)
    argv = operator_shell.shell_argv(settings, command)
    sys.stdout.flush()
    os.execvp(argv[0], argv)  # noqa: S606 - replaces this process with the operator's bash


def cmd_prune_images() -> int:
    print(f"removed {len(_prune_stale_images())} stale base image(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "up", help="build or reuse the image, create networks and hosts, write the inventory"
    )
    conv = sub.add_parser("converge", help="run playbooks/site.yml against the lab")
    conv.add_argument(
        "--idempotent", action="store_true", help="converge again and require 0 changed"
    )
    shell = sub.add_parser(
        "shell", help="a shell where every runbook command runs against the lab (ssh app-a1 ...)"
    )
    shell.add_argument("-c", dest="shell_command", help="run this command in it and exit")
    stat = sub.add_parser("status", help="hosts, networks, addresses, health, alerts, memory")
    stat.add_argument("--json", action="store_true")
    page = sub.add_parser("pages", help="the notifications the lab's pager (alert sink) received")
    page.add_argument("--receiver", help="pager, chat, tickets or heartbeat")
    page.add_argument("--alertname")
    page.add_argument("--json", action="store_true")
    sub.add_parser("report", help="URLs and a short report")
    sub.add_parser("down", help="remove this lab's containers and networks, and stale base images")
    fault = sub.add_parser(
        "fault",
        help="partner sandbox fault knobs: show | set SERVICE KNOB=VALUE ... | reset [SERVICE]",
    )
    fault.add_argument("knobs", nargs=argparse.REMAINDER)
    sub.add_parser("prune-images", help="remove base images of older recipes")
    args = parser.parse_args(argv)
    try:
        settings = from_env()
        if args.command == "up":
            return cmd_up(settings)
        if args.command == "converge":
            return cmd_converge(settings, args.idempotent)
        if args.command == "shell":
            return cmd_shell(settings, args.shell_command)
        if args.command == "status":
            return cmd_status(settings, args.json)
        if args.command == "pages":
            filters = {"receiver": args.receiver or "", "alertname": args.alertname or ""}
            return cmd_pages(settings, filters, args.json)
        if args.command == "report":
            return cmd_report(settings)
        if args.command == "down":
            return cmd_down(settings)
        if args.command == "fault":
            return cmd_fault(settings, args.knobs or ["show"])
        return cmd_prune_images()
    except (
        SettingsError,
        PodmanError,
        hosts.LabError,
        image.ImageBuildError,
        monitoring_access.MonitoringAccessError,
    ) as error:
        print(f"lab: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
