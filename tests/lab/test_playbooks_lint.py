"""The playbooks pass ansible-lint's production profile and Ansible's syntax check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(PLAYBOOKS / "ansible.cfg")
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env["NO_COLOR"] = "1"
    return env


def test_ansible_lint_production_profile():
    result = subprocess.run(
        [str(BIN / "ansible-lint"), "--profile", "production", "--offline", "site.yml", "roles"],
        cwd=PLAYBOOKS,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


def test_site_yml_syntax_against_an_empty_inventory(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all: {}\n")
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "--syntax-check", "-i", str(inventory), "site.yml"],
        cwd=PLAYBOOKS,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
