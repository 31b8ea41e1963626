"""Create and remove the lab's podman networks and hosts, and give Ansible its way in.

Each host is a container running systemd as PID 1 with sshd, bootstrapped the
way a cloud image is on first boot: an `admin` user with the lab's public key
and passwordless sudo. Everything made here carries the label `shoplab.lab=<name>`,
and teardown removes exactly what carries it.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import topology

from . import disks, podman
from .layout import HostPlan, peer_addresses, plan
from .settings import LabSettings

LAB_LABEL = "shoplab.lab"
ADMIN_USER = "admin"
BOOT_TIMEOUT_S = 120
SSH_PORT = 22

# Hosts run their own nftables (NET_ADMIN).
RUN_FLAGS = ("--systemd=always", "--cap-add=NET_ADMIN", *podman.RUN_ULIMITS)


class LabError(RuntimeError):
    """Something about the lab's hosts is not as it must be; the message says what."""


@dataclass(frozen=True)
class SshAccess:
    private_key: Path
    public_key: str
    known_hosts: Path


def ssh_access(settings: LabSettings) -> SshAccess:
    """The lab's own SSH key pair (generated once per lab, kept in lab/state)."""
    ssh_dir = settings.state_dir / "ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ssh_dir / "id_ed25519"
    if not key.exists():
        subprocess.run(  # noqa: S603
            [  # noqa: S607 - ssh-keygen from openssh-client, on PATH
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                f"{settings.name}-ansible",
                "-f",
                str(key),
            ],
            check=True,
        )
    return SshAccess(key, key.with_suffix(".pub").read_text().strip(), ssh_dir / "known_hosts")


def ensure_networks(settings: LabSettings) -> list[str]:
    created = []
    for tier in topology.load().tiers:
        name = settings.network(tier)
        if podman.exists("network", name):
            continue
        podman.run(
            [
                "network",
                "create",
                "--opt",
                "isolate=true",
                "--subnet",
                str(settings.subnet(tier)),
                "--label",
                f"{LAB_LABEL}={settings.name}",
                "--label",
                f"shoplab.tier={tier}",
                name,
            ]
        )
        created.append(name)
    return created


def _run_args(
    settings: LabSettings,
    host: HostPlan,
    hosts: dict[str, HostPlan],
    image: str,
    log_volume: Path | None = None,
) -> list[str]:
    args = [
        "run",
        "-d",
        "--name",
        settings.container(host.name),
        "--hostname",
        host.name,
        "--label",
        f"{LAB_LABEL}={settings.name}",
        "--label",
        f"shoplab.host={host.name}",
        *RUN_FLAGS,
    ]
    for tier, address in host.addresses.items():
        args += ["--network", f"{settings.network(tier)}:ip={address}"]
    for peer, address in sorted(peer_addresses(host, hosts).items()):
        args += ["--add-host", f"{peer}:{address}"]
    args += ["-p", f"127.0.0.1::{SSH_PORT}"]
    for key, container_port in host.published.items():
        loopback = settings.loopback_port(key)
        args += ["-p", f"127.0.0.1:{loopback or ''}:{container_port}"]
    if log_volume is not None:
        args += ["--volume", f"{log_volume}:{disks.LOG_MOUNTPOINT}"]
    args.append(image)
    return args


def _wait_booted(container: str) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    state = ""
    while time.monotonic() < deadline:
        result = podman.exec_in(container, ["systemctl", "is-system-running"], check=False)
        state = result.stdout.strip()
        if state in {"running", "degraded"}:
            return
        time.sleep(0.5)
    raise LabError(f"{container}: systemd did not finish booting (state {state!r})")


def _bootstrap_admin(container: str, public_key: str) -> None:
    """What cloud-init does on a fresh cloud host: a sudo user with the deploy key."""
    script = f"""
id -u {ADMIN_USER} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {ADMIN_USER}
install -d -m 0700 -o {ADMIN_USER} -g {ADMIN_USER} /home/{ADMIN_USER}/.ssh
printf '%s\\n' {shlex.quote(public_key)} > /home/{ADMIN_USER}/.ssh/authorized_keys
chown {ADMIN_USER}:{ADMIN_USER} /home/{ADMIN_USER}/.ssh/authorized_keys
chmod 0600 /home/{ADMIN_USER}/.ssh/authorized_keys
printf '%s ALL=(ALL) NOPASSWD:ALL\\n' {ADMIN_USER} > /etc/sudoers.d/90-cloud-init-users
chmod 0440 /etc/sudoers.d/90-cloud-init-users
"""
    podman.exec_in(container, ["/bin/sh", "-euc", script])


def _wait_host_key(container: str) -> str:
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while time.monotonic() < deadline:
        result = podman.exec_in(
            container, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"], check=False
        )
        if result.returncode == 0 and result.stdout.strip():
            key_type, key_data = result.stdout.split()[:2]
            return f"{key_type} {key_data}"
        time.sleep(0.5)
    raise LabError(f"{container}: no SSH host key appeared")


def loopback_ports(settings: LabSettings, host: str) -> dict[int, int]:
    """Container port -> loopback port as podman published them."""
    out = podman.run(["port", settings.container(host)]).stdout
    mapping: dict[int, int] = {}
    for line in out.splitlines():
        # "22/tcp -> 127.0.0.1:40213"
        container_side, _, host_side = line.partition(" -> ")
        if not host_side:
            continue
        mapping[int(container_side.split("/")[0])] = int(host_side.rsplit(":", 1)[1])
    return mapping


def ensure_hosts(settings: LabSettings, image: str) -> dict[str, HostPlan]:
    """Create (or start) every host, bootstrap SSH access, record their host keys."""
    hosts = plan(settings)
    access = ssh_access(settings)
    for host in hosts.values():
        name = settings.container(host.name)
        log_volume = (
            disks.ensure_log_volume(settings, host.name, image)
            if host.tier in disks.LOG_VOLUME_TIERS
            else None
        )
        if not podman.exists("container", name):
            try:
                podman.run(_run_args(settings, host, hosts, image, log_volume))
            except podman.PodmanError as error:
                if "address already in use" in str(error):
                    raise LabError(
                        f"{name}: a loopback port it publishes is taken ({error}); choose "
                        "another with LAB_PORT_<NAME>=port (e.g. make lab LAB_PORT_EDGE_HTTPS=9443)"
                    ) from error
                raise
        elif (
            podman.run(["inspect", "--format", "{{.State.Running}}", name]).stdout.strip() != "true"
        ):
            podman.run(["start", name])
    known_lines = []
    for host in hosts.values():
        name = settings.container(host.name)
        _wait_booted(name)
        _bootstrap_admin(name, access.public_key)
        host_key = _wait_host_key(name)
        ssh_port = loopback_ports(settings, host.name)[SSH_PORT]
        known_lines.append(f"[127.0.0.1]:{ssh_port} {host_key}")
    access.known_hosts.write_text("\n".join(known_lines) + "\n", encoding="utf-8")
    return hosts


def _remove_containers(names: list[str], attempts: int = 3) -> None:
    """`podman rm --force`, again for whatever is left when it fails.

    A container that exits between podman's stop signal and its SIGKILL makes
    the whole command fail ("container state improper: stopped") although the
    container is now stopped and a second `rm` removes it.
    """
    left = names
    for _ in range(attempts):
        result = podman.run(["rm", "--force", "--ignore", "--time", "5", *left], check=False)
        left = [name for name in left if podman.exists("container", name)]
        if not left:
            return
    raise podman.PodmanError(
        f"podman rm could not remove {', '.join(left)}: {result.stderr.strip()}"
    )


def remove_all(settings: LabSettings) -> dict[str, list[str]]:
    """Remove the containers and networks labelled for this lab, and nothing else; unmount
    its log volumes (the images stay in its state folder)."""
    label = f"{LAB_LABEL}={settings.name}"
    containers = [c["Names"][0] for c in podman.containers_with_label(label)]
    if containers:
        _remove_containers(containers)
    networks = podman.networks_with_label(label)
    if networks:
        podman.run(["network", "rm", *networks])
    return {"containers": containers, "networks": networks, "log_volumes": disks.release(settings)}
