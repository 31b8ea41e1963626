"""Render one role's template with Ansible itself, on this machine: the role's defaults,
the repository's filter plugins, an inventory and overrides the test gives. The tests
that run a real server on the result (HAProxy, Alertmanager) check what the role would
install, not a copy of it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

PLAYBOOKS = Path(__file__).resolve().parents[1] / "playbooks"
BIN = Path(sys.executable).parent


class RenderFailed(AssertionError):
    """Ansible refused to render the template; the message holds its output."""


def render_role_template(
    role: str,
    template: str,
    folder: Path,
    overrides: dict[str, Any],
    *,
    inventory: dict[str, Any] | None = None,
    host: str = "localhost",
) -> Path:
    """playbooks/roles/<role>/templates/<template> rendered for `host` into `folder`."""
    inventory = inventory or {"all": {"hosts": {host: {}}}}
    inventory["all"]["hosts"].setdefault(host, {})["ansible_connection"] = "local"
    (folder / "inventory.yml").write_text(yaml.safe_dump(inventory))
    rendered = folder / template.removesuffix(".j2")
    play = [
        {
            "hosts": host,
            "gather_facts": False,
            "vars_files": [str(PLAYBOOKS / "roles" / role / "defaults" / "main.yml")],
            "tasks": [
                {
                    "name": f"Render {role}'s {template}",
                    "ansible.builtin.template": {
                        "src": str(PLAYBOOKS / "roles" / role / "templates" / template),
                        "dest": str(rendered),
                        "mode": "0644",
                    },
                }
            ],
        }
    ]
    result = run_playbook(
        play, folder, str(folder / "inventory.yml"),
        "-e", yaml.safe_dump(overrides, default_flow_style=True),
    )  # fmt: skip
    if result.returncode != 0:
        raise RenderFailed(result.stdout + result.stderr)
    return rendered


def run_playbook(
    play: list[dict[str, Any]], folder: Path, inventory: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`play` written to `folder` and run by ansible-playbook with the repository's
    configuration and filter plugins, without privilege escalation."""
    playbook = folder / "play.yml"
    playbook.write_text(yaml.safe_dump(play))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"),
        "ANSIBLE_BECOME": "false",
        "ANSIBLE_FILTER_PLUGINS": str(PLAYBOOKS / "filter_plugins"),
    }
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", inventory, *args, str(playbook)],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
