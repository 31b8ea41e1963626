"""The operator's way into the lab: every runbook command runs verbatim from this shell.

Runbooks reach hosts by name (`ssh app-a1 sudo systemctl status shop`) and Prometheus
and Alertmanager through four variables (runbooks/on-call.md). For the lab this module
writes, under lab/state/<lab>/operator/:

- ssh_config: one `Host` per lab host (edge, app-a1, db, mon, ...) on its loopback SSH
  port, as the lab's admin user with the lab's key, host keys checked against the
  known_hosts the lab recorded when it booted the hosts;
- bin/ssh and bin/scp: the OpenSSH clients with that configuration;
- env.sh: puts bin/ first on PATH and the venv's ansible-playbook after it, exports
  PROMETHEUS_URL, ALERTMANAGER_URL, MONITORING_CURL_CONFIG and MONITORING_HTTP_CONFIG,
  and ANSIBLE_CONFIG and ANSIBLE_INVENTORY (a runbook's `ansible-playbook
  playbooks/site.yml --limit app-a1`, run from the repository, converges this lab);
- bashrc: the operator's own ~/.bashrc, then env.sh, and a prompt naming the lab.

`make lab-shell` (python -m lab shell) opens that shell; `source <dir>/env.sh` gives
the same in the current one. The files are rewritten on every converge and every
`lab shell`, since loopback ports change when hosts are recreated.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from . import monitoring_access, status
from .converge import ANSIBLE_BIN, ansible_variables
from .hosts import ADMIN_USER, SSH_PORT, loopback_ports, ssh_access
from .layout import HostPlan
from .settings import LabSettings


def operator_dir(settings: LabSettings) -> Path:
    return settings.state_dir / "operator"


def ssh_config_file(settings: LabSettings) -> Path:
    return operator_dir(settings) / "ssh_config"


def bin_dir(settings: LabSettings) -> Path:
    return operator_dir(settings) / "bin"


def bashrc_file(settings: LabSettings) -> Path:
    return operator_dir(settings) / "bashrc"


def env_file(settings: LabSettings) -> Path:
    return operator_dir(settings) / "env.sh"


def ssh_config_text(settings: LabSettings, ssh_ports: dict[str, int]) -> str:
    """ssh_config for the lab's hosts, given each host's loopback SSH port."""
    access = ssh_access(settings)
    lines = [f"# Generated for lab {settings.name}; rewritten on every converge.", ""]
    for name, port in sorted(ssh_ports.items()):
        lines += [f"Host {name}", "    HostName 127.0.0.1", f"    Port {port}", ""]
    lines += [
        "Host *",
        f"    User {ADMIN_USER}",
        f"    IdentityFile {access.private_key}",
        "    IdentitiesOnly yes",
        f"    UserKnownHostsFile {access.known_hosts}",
        "    StrictHostKeyChecking yes",
        "    LogLevel ERROR",
        "",
    ]
    return "\n".join(lines)


def wrapper_text(client: str, ssh_config: Path) -> str:
    binary = shutil.which(client, path="/usr/bin:/bin") or f"/usr/bin/{client}"
    return f'#!/bin/sh\nexec {binary} -F {shlex.quote(str(ssh_config))} "$@"\n'


def _env_text(settings: LabSettings) -> str:
    urls = status.urls(settings)
    exports = {
        "LAB_NAME": settings.name,
        "LAB_SSH_CONFIG": str(ssh_config_file(settings)),
        "PROMETHEUS_URL": urls.get("prometheus", "").rstrip("/"),
        "ALERTMANAGER_URL": urls.get("alertmanager", "").rstrip("/"),
        "MONITORING_CURL_CONFIG": str(monitoring_access.curl_config_file(settings)),
        "MONITORING_HTTP_CONFIG": str(monitoring_access.http_config_file(settings)),
        **ansible_variables(settings),
    }
    lines = [f"# source this file: the runbooks' commands then run against lab {settings.name}"]
    path = f"{shlex.quote(str(bin_dir(settings)))}:{shlex.quote(str(ANSIBLE_BIN))}"
    lines.append(f'export PATH={path}:"$PATH"')
    lines += [f"export {key}={shlex.quote(value)}" for key, value in exports.items()]
    return "\n".join(lines) + "\n"


def write(settings: LabSettings, hosts: dict[str, HostPlan]) -> dict[str, Path]:
    """Write the operator's files for the running lab; returns them by name."""
    wrappers = bin_dir(settings)
    wrappers.mkdir(parents=True, exist_ok=True)
    ssh_config = ssh_config_file(settings)
    # A stopped host (the zone-down drill) publishes no port: it has no entry until it is back.
    published = {name: loopback_ports(settings, name).get(SSH_PORT) for name in hosts}
    ssh_ports = {name: port for name, port in published.items() if port}
    ssh_config.write_text(ssh_config_text(settings, ssh_ports), encoding="utf-8")
    for client in ("ssh", "scp"):
        wrapper = wrappers / client
        wrapper.write_text(wrapper_text(client, ssh_config), encoding="utf-8")
        wrapper.chmod(0o755)
    env = env_file(settings)
    env.write_text(_env_text(settings), encoding="utf-8")
    bashrc = bashrc_file(settings)
    bashrc.write_text(
        "[ -f ~/.bashrc ] && . ~/.bashrc\n"
        f". {shlex.quote(str(env))}\n"
        f'PS1="({settings.name}) $PS1"\n',
        encoding="utf-8",
    )
    return {"ssh_config": ssh_config, "env": env, "bashrc": bashrc}


def shell_argv(settings: LabSettings, command: str | None) -> list[str]:
    """bash with the operator's files: interactive, or running `command` and exiting."""
    if command is None:
        return ["bash", "--rcfile", str(bashrc_file(settings)), "-i"]
    return ["bash", "-c", f". {shlex.quote(str(env_file(settings)))} && {command}"]
