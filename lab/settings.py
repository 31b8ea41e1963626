"""Which lab this is: its name, where its state lives, its subnets and loopback ports.

Two labs can run side by side (the one `make lab` builds and the one the test
suite builds): each has its own name prefix, its own subnets (the topology's
lab subnets shifted by whole /24 blocks) and its own loopback ports.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import topology

REPO_ROOT = Path(__file__).resolve().parent.parent
STATE_ROOT = REPO_ROOT / "lab" / "state"
PLAYBOOKS = REPO_ROOT / "playbooks"
MAIN_INVENTORY = PLAYBOOKS / "inventories" / "lab"
DEFAULT_NAME = "shoplab"

_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,20}$")


class SettingsError(ValueError):
    """A lab setting from the environment is unusable; the message names it."""


@dataclass(frozen=True)
class LabSettings:
    name: str = DEFAULT_NAME
    subnet_shift: int = 0
    # published name (topology lab.published) -> loopback port; 0 lets podman pick one
    loopback_ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME_PATTERN.match(self.name):
            raise SettingsError(
                f"lab name {self.name!r}: use 2-21 lowercase letters, digits and dashes"
            )
        if not 0 <= self.subnet_shift <= 200:
            raise SettingsError(f"subnet shift {self.subnet_shift}: must be within 0..200")
        published = topology.load().lab.published
        for key, port in self.loopback_ports.items():
            if key not in published:
                raise SettingsError(f"published port {key!r} is not in topology lab.published")
            if not 0 <= port <= 65535:
                raise SettingsError(f"published port {key}={port}: not a TCP port")

    @property
    def is_main(self) -> bool:
        """The lab `make lab` builds: its inventory is playbooks/inventories/lab."""
        return self.name == DEFAULT_NAME

    @property
    def state_dir(self) -> Path:
        return STATE_ROOT / self.name

    @property
    def secrets_dir(self) -> Path:
        """Passwords and keys the converge generates (the group_vars' `password` lookups)."""
        return self.state_dir / "secrets"

    @property
    def ca_file(self) -> Path:
        """The lab's CA certificate: the edge, Prometheus and Alertmanager verify against it."""
        return self.state_dir / "pki" / "ca.crt"

    @property
    def inventory_dir(self) -> Path:
        return MAIN_INVENTORY if self.is_main else self.state_dir / "inventory"

    @property
    def inventory_file(self) -> Path:
        return self.inventory_dir / "generated" / "hosts.yml"

    def container(self, host: str) -> str:
        return f"{self.name}-{host}"

    def network(self, tier: str) -> str:
        return f"{self.name}-{tier}"

    def subnet(self, tier: str) -> ipaddress.IPv4Network:
        base = ipaddress.IPv4Network(topology.load().tiers[tier].lab_subnet)
        shifted = ipaddress.IPv4Network(
            (int(base.network_address) + self.subnet_shift * 256, base.prefixlen)
        )
        return shifted

    def loopback_port(self, published: str) -> int:
        """The loopback port for a published service (0 = podman picks a free one)."""
        default = topology.load().lab.published[published].loopback
        return self.loopback_ports.get(published, default)


def from_env(environ: dict[str, str] | None = None) -> LabSettings:
    """Settings from LAB_NAME, LAB_SUBNET_SHIFT, LAB_PORT_<PUBLISHED> (e.g. LAB_PORT_PROMETHEUS)."""
    env = os.environ if environ is None else environ
    ports: dict[str, int] = {}
    for key in topology.load().lab.published:
        raw = env.get(f"LAB_PORT_{key.upper()}")
        if raw is None or raw == "":
            continue
        if not raw.isdigit():
            raise SettingsError(f"LAB_PORT_{key.upper()}={raw!r}: not a port number")
        ports[key] = int(raw)
    shift_raw = env.get("LAB_SUBNET_SHIFT", "0") or "0"
    if not shift_raw.isdigit():
        raise SettingsError(f"LAB_SUBNET_SHIFT={shift_raw!r}: not a whole number")
    return LabSettings(
        name=env.get("LAB_NAME", DEFAULT_NAME) or DEFAULT_NAME,
        subnet_shift=int(shift_raw),
        loopback_ports=ports,
    )
