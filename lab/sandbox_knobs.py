"""The partner sandboxes' fault knobs (`app.sandbox.knobs`), run on the partners host.

The sandboxes' admin port is open only to the mgmt tier, so this machine cannot reach it;
the partners host runs the same release, the knobs CLI included, and reaches its own
admin port. `python -m lab fault ...` and the drills' partner faults both come here.
"""

from __future__ import annotations

import subprocess

import topology

from . import hosts, podman
from .layout import plan
from .settings import LabSettings

# Where the shop role installs the current release (playbooks/roles/shop_release).
SHOP_VENV = "/opt/shop/current/venv"


def run(settings: LabSettings, knobs_args: list[str]) -> subprocess.CompletedProcess[str]:
    """`python -m app.sandbox.knobs --admin <partners admin> KNOBS_ARGS...` on the host."""
    host = next((h for h in plan(settings).values() if h.tier == "partners"), None)
    if host is None:
        raise hosts.LabError("the topology's lab has no host in the partners tier")
    admin = f"http://{host.name}:{topology.load().port('partners_metrics')}"
    command = ["sudo", "-u", "shop", f"{SHOP_VENV}/bin/python", "-m", "app.sandbox.knobs"]
    return podman.exec_in(
        settings.container(host.name), [*command, "--admin", admin, *knobs_args], check=False
    )
