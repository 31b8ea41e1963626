"""The operator's SSH configuration resolves every lab host name the runbooks use to its
loopback SSH port, as the lab's admin user with the lab's key and checked host keys; the
ssh wrapper uses it. No lab needed: OpenSSH's own `ssh -G` says what it would do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import topology
from lab import operator_shell
from lab.settings import LabSettings

HOSTS = sorted(topology.load().lab.hosts)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LabSettings:
    settings = LabSettings(name="shoplab-operator-test")
    monkeypatch.setattr(LabSettings, "state_dir", property(lambda _: tmp_path / "state"))
    return settings


def _resolved(ssh: list[str], host: str) -> dict[str, str]:
    out = subprocess.run([*ssh, "-G", host], capture_output=True, text=True, check=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def test_every_lab_host_resolves_to_its_loopback_ssh_port(settings: LabSettings) -> None:
    ports = {name: 42000 + n for n, name in enumerate(HOSTS)}
    config = settings.state_dir / "ssh_config"
    config.parent.mkdir(parents=True)
    config.write_text(operator_shell.ssh_config_text(settings, ports))
    key = settings.state_dir / "ssh" / "id_ed25519"
    for name in HOSTS:
        seen = _resolved(["ssh", "-F", str(config)], name)
        assert (seen["hostname"], seen["port"], seen["user"]) == (
            "127.0.0.1",
            str(ports[name]),
            "admin",
        ), name
        assert seen["identityfile"] == str(key)
        assert seen["stricthostkeychecking"] == "true"
        assert seen["userknownhostsfile"] == str(key.parent / "known_hosts")
    assert {"edge", "app-a1", "db", "mon", "partners"} <= set(HOSTS)


def test_the_ssh_wrapper_uses_the_lab_configuration(settings: LabSettings, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(operator_shell.ssh_config_text(settings, {"app-a1": 42111}))
    wrapper = tmp_path / "ssh"
    wrapper.write_text(operator_shell.wrapper_text("ssh", config))
    wrapper.chmod(0o755)
    assert _resolved([str(wrapper)], "app-a1")["port"] == "42111"


def test_the_operator_shell_runs_the_runbooks_ansible_playbook_against_this_lab(
    settings: LabSettings,
) -> None:
    """A runbook's `ansible-playbook playbooks/site.yml --limit app-a1` needs the venv's
    ansible-playbook on PATH and this lab's inventory (the InstanceDown and ZoneDown
    mitigations); in a shell without the venv it was "command not found"."""
    env_sh = settings.state_dir / "env.sh"
    env_sh.parent.mkdir(parents=True)
    env_sh.write_text(operator_shell._env_text(settings))
    shown = subprocess.run(
        ["bash", "-c", f". {env_sh} && command -v ansible-playbook && echo $ANSIBLE_INVENTORY"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(settings.state_dir)},
    ).stdout.split()
    assert Path(shown[0]).parent == Path(sys.executable).parent
    assert shown[1] == str(settings.inventory_dir)
