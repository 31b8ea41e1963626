"""Where load may be sent: loopback and the project's own lab, unless the operator owns the target.

A load test against someone else's server is an attack. Every address a
target's host name resolves to must be loopback or inside one of the lab's
subnets (topology.yml), or the operator must say explicitly that they own it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import topology

DEFAULT_TARGET = "http://127.0.0.1:8000"
OWNED_FLAG = "--i-own-this-target"
OWNED_ENV = "OWNED_TARGET"

Resolver = Callable[[str], list[str]]


class UnsafeTarget(ValueError):
    """The target is not ours to load; the message says why and how to proceed if it is."""


@dataclass(frozen=True)
class Target:
    url: str
    host: str
    port: int
    addresses: tuple[str, ...]
    is_local: bool  # every address is loopback: the target's processes run on this machine
    on_this_machine: bool  # loopback or the lab: the target shares this machine's CPUs
    owned_override: bool  # allowed only because the operator said they own it


def resolve_host(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return []
    return sorted({str(info[4][0]) for info in infos})


def lab_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(t.lab_subnet) for t in topology.load().tiers.values()]


def is_ours(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_loopback or any(ip in net for net in lab_networks())


def check_target(url: str, *, owned: bool = False, resolve: Resolver = resolve_host) -> Target:
    """Validate `url` as a load target; raise UnsafeTarget (or ValueError for a bad URL)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"target {url!r} is not an http:// or https:// URL with a host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"target {url!r} must be a base URL (scheme, host, port) without a path")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"target {url!r} has an invalid port") from None
    host = parts.hostname
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        addresses = resolve(host)
    base = f"{parts.scheme}://{parts.netloc}"
    ours = bool(addresses) and all(is_ours(a) for a in addresses)
    if not ours and not owned:
        why = (
            f"{host!r} does not resolve"
            if not addresses
            else f"{host!r} resolves to {', '.join(addresses)}"
        )
        raise UnsafeTarget(
            f"refusing to load {base}: {why}, outside loopback and the lab subnets "
            f"({', '.join(str(n) for n in lab_networks())}). If you own this target and "
            f"mean to load it, pass {OWNED_FLAG} (or set {OWNED_ENV}=1)."
        )
    is_local = bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)
    return Target(base, host, port, tuple(addresses), is_local, ours, owned_override=not ours)
