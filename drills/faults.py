"""The faults a drill brings into the lab, and how each is cleared.

Real faults inside the lab's hosts, never simulated in the shop: a zone's hosts stopped,
a service stopped on its host, a partner sandbox's fault knobs turned (the partners are
the only fakes, and these are their documented knobs, app/sandbox/faults.py). `clear`
puts the lab back whatever state the fault left it in, so an experiment's rollback can
always run it, also after a runbook's mitigation already cleared the fault.

`python -m drills fault NAME [--clear]` (`make lab-fault FAULT=NAME [CLEAR=1]`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from lab import podman, sandbox_knobs

from . import lab_access


class FaultError(RuntimeError):
    pass


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    bring: Callable[[], None]
    clear: Callable[[], None]


def _container(host: str) -> str:
    return lab_access.settings().container(host)


def _host_of(tier: str) -> str:
    hosts = lab_access.hosts_in(tier)
    if len(hosts) != 1:
        raise FaultError(f"expected one host in tier {tier}, found {[h.name for h in hosts]}")
    return hosts[0].name


def _systemctl(host: str, verb: str, unit: str) -> None:
    result = podman.exec_in(_container(host), ["systemctl", verb, unit], check=False)
    if result.returncode != 0:
        raise FaultError(f"{host}: systemctl {verb} {unit}: {result.stderr.strip()}")


def _running(host: str) -> bool:
    answer = podman.run(["inspect", "--format", "{{.State.Running}}", _container(host)])
    return answer.stdout.strip() == "true"


# --- a zone's hosts ---------------------------------------------------------------------


def _zone_hosts(zone: str) -> list[str]:
    names = [h.name for h in lab_access.hosts_in("app", zone=zone)]
    if not names:
        raise FaultError(f"the lab has no app server in zone {zone}")
    return names


def _zone_down(zone: str) -> None:
    for host in _zone_hosts(zone):
        podman.run(["stop", "--time", "10", _container(host)])


def _zone_up(zone: str) -> None:
    for host in _zone_hosts(zone):
        if not _running(host):
            podman.run(["start", _container(host)])


# --- one app server -----------------------------------------------------------------


def _sh(host: str, script: str) -> str:
    result = podman.exec_in(_container(host), ["sh", "-ec", script], check=False)
    if result.returncode != 0:
        raise FaultError(f"{host}: {script.splitlines()[0]}...: {result.stderr.strip()}")
    return result.stdout


SHOP_ENV = "/etc/shop/shop.env"  # the shop role's environment file
SHOP_ENV_KEPT = "/root/shop.env.before-drill"


def _crashloop(host: str) -> None:
    """A bad hand edit of the shop's environment (ENVIRONMENT=prod is not a value the
    settings accept), then a restart: the unit fails at start and systemd restarts it
    every 2 s, for ever."""
    _sh(
        host,
        f"test -e {SHOP_ENV_KEPT} || cp -p {SHOP_ENV} {SHOP_ENV_KEPT}\n"
        f"sed -i 's/^ENVIRONMENT=.*/ENVIRONMENT=prod/' {SHOP_ENV}\n"
        "systemctl restart shop || true",
    )


def _uncrashloop(host: str) -> None:
    """The environment file as it was (if the runbook's re-converge has not already
    rewritten it), and the shop running."""
    _sh(
        host,
        f"if test -e {SHOP_ENV_KEPT}; then\n"
        f"  if grep -q '^ENVIRONMENT=prod$' {SHOP_ENV}; then mv {SHOP_ENV_KEPT} {SHOP_ENV};"
        f" else rm {SHOP_ENV_KEPT}; fi\n"
        "fi\n"
        "systemctl is-active --quiet shop || systemctl restart shop",
    )


PARTITION_TABLE = "drill_partition"  # not the firewall role's `inet filter`


def _partition(host: str) -> None:
    """Every packet from `host` to the data tier's host dropped, in a table of its own
    (what a stray rule or a broken network path does: connections hang, none refused)."""
    addresses = ", ".join(sorted(set(lab_access.hosts()[_host_of("data")].addresses.values())))
    _sh(
        host,
        f"nft add table inet {PARTITION_TABLE}\n"
        f"nft add chain inet {PARTITION_TABLE} output "
        "'{ type filter hook output priority -10; policy accept; }'\n"
        f"nft add rule inet {PARTITION_TABLE} output ip daddr {{ {addresses} }} drop",
    )


def _unpartition(host: str) -> None:
    _sh(host, f"nft delete table inet {PARTITION_TABLE} 2>/dev/null || true")


# --- the partner sandboxes' knobs -------------------------------------------------------


def _knobs(*args: str) -> None:
    result = sandbox_knobs.run(lab_access.settings(), list(args))
    if result.returncode != 0:
        raise FaultError(f"knobs {' '.join(args)}: {result.stderr.strip() or result.stdout}")


def _knob_fault(name: str, service: str, knobs: list[str], description: str) -> Fault:
    return Fault(
        name,
        description,
        bring=lambda: _knobs("set", service, *knobs),
        clear=lambda: _knobs("reset", service),
    )


# --- the catalogue ----------------------------------------------------------------------

POSTGRES_UNIT = "postgresql@15-main"  # Debian 12's cluster, as the runbooks name it
ZONE = "b"  # the zone a zone-down takes away (the edge keeps serving from the other)
CRASHLOOP_HOST = "app-a1"  # one app server (in the lab, all of zone a)
PARTITION_HOST = "app-a1"

FAULTS: dict[str, Fault] = {
    fault.name: fault
    for fault in (
        Fault(
            "zone-down",
            f"every app server of zone {ZONE} stops (its hosts shut down)",
            bring=lambda: _zone_down(ZONE),
            clear=lambda: _zone_up(ZONE),
        ),
        Fault(
            "cache-down",
            "Redis stops on the data host",
            bring=lambda: _systemctl(_host_of("data"), "stop", "redis-server"),
            clear=lambda: _systemctl(_host_of("data"), "start", "redis-server"),
        ),
        Fault(
            "db-down",
            "PostgreSQL stops on the data host",
            bring=lambda: _systemctl(_host_of("data"), "stop", POSTGRES_UNIT),
            clear=lambda: _systemctl(_host_of("data"), "start", POSTGRES_UNIT),
        ),
        Fault(
            "app-crashloop",
            f"the shop on {CRASHLOOP_HOST} crash-loops after a bad edit of {SHOP_ENV}",
            bring=lambda: _crashloop(CRASHLOOP_HOST),
            clear=lambda: _uncrashloop(CRASHLOOP_HOST),
        ),
        Fault(
            "partition",
            f"{PARTITION_HOST} loses the data tier (nftables drops its packets to db)",
            bring=lambda: _partition(PARTITION_HOST),
            clear=lambda: _unpartition(PARTITION_HOST),
        ),
        _knob_fault(
            "payment-outage",
            "card-primary",
            ["outage=true"],
            "the primary card provider answers every call with 503",
        ),
        _knob_fault(
            "payment-slow",
            "card-primary",
            ["latency_ms=4000"],
            "the primary card provider takes 4 s for every call",
        ),
        _knob_fault(
            "payment-declines",
            "card-primary",
            ["decline_rate=60"],
            "the primary card provider declines 60 % of the charges",
        ),
        _knob_fault(
            "courier-outage",
            "swiftpost",
            ["outage=true"],
            "the courier swiftpost answers every call with 503",
        ),
        _knob_fault(
            "mail-outage",
            "smtp",
            ["outage=true"],
            "the mail relay refuses every message (the outbox must hold them)",
        ),
    )
}


def get(name: str) -> Fault:
    try:
        return FAULTS[name]
    except KeyError:
        known = ", ".join(sorted(FAULTS))
        raise FaultError(f"unknown fault {name!r}; the faults are: {known}") from None


def main(name: str, clear: bool) -> int:
    try:
        fault = get(name)
        (fault.clear if clear else fault.bring)()
    except (FaultError, podman.PodmanError, subprocess.SubprocessError) as error:
        print(f"drills: {error}", file=sys.stderr)
        return 1
    print(f"{'cleared' if clear else 'brought'}: {fault.name} ({fault.description})")
    return 0
