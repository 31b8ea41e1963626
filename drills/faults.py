"""The faults a drill brings into the lab, and how each is cleared.

Real faults inside the lab's hosts, never simulated in the shop: a zone's hosts stopped,
a service stopped on its host, a partner sandbox's fault knobs turned (the partners are
the only fakes, and these are their documented knobs, app/sandbox/faults.py). `clear`
puts the lab back whatever state the fault left it in, so an experiment's rollback can
always run it, also after a runbook's mitigation already cleared the fault.

`python -m drills fault NAME [--clear]` (`make lab-fault FAULT=NAME [CLEAR=1]`).
"""

from __future__ import annotations

import base64
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import topology
from lab import podman, sandbox_knobs

from . import certificates, lab_access


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


# --- one app server's disk --------------------------------------------------------------

DISK_FILL_HOST = "app-a1"
RUNAWAY_LOG = "/var/log/drill-runaway.log"  # a log nobody rotates, grown in one burst
DISK_LEFT_SHARE = 0.05  # of the filesystem left free (HostDiskSpaceLow's threshold is 10 %)


def _fill_log_volume(host: str) -> None:
    """/var/log filled to 95 %, on the host's own log volume (lab/disks.py): never on a
    root that is this machine's disk."""
    _sh(
        host,
        "mountpoint -q /var/log || { echo '/var/log is not a volume of its own on this host"
        " (a lab built before lab/disks.py): rebuild the lab' >&2; exit 1; }\n"
        "size=$(df --output=size -B1 /var/log | tail -n 1)\n"
        "avail=$(df --output=avail -B1 /var/log | tail -n 1)\n"
        f"fill=$((avail - size * {round(DISK_LEFT_SHARE * 100)} / 100))\n"
        f'test "$fill" -gt 0 && fallocate --length "$fill" {RUNAWAY_LOG}',
    )


def _free_log_volume(host: str) -> None:
    _sh(host, f"rm -f {RUNAWAY_LOG}")


# --- the database: a client on the data host ---------------------------------------------

HOG_UNIT = "drill-connection-hog"
HOG_APPLICATION = "nightly-export"  # what pg_stat_activity shows: a batch job leaking sessions
HOG_SHARE = 0.9  # of the connections ordinary roles may open (the alert's threshold is 80 %)
LOCK_UNIT = "drill-lock-holder"
LOCK_APPLICATION = "manual-fix"  # someone's psql, a transaction left open by hand
LOCKED_TABLE = "orders"
CLIENT_WAIT_S = 60


def _db_value(sql: str) -> str:
    """The one value `sql` answers in the shop's database."""
    return lab_access.psql(sql)[0][0]


def _start_db_client(unit: str, application: str, script: str, until_sql: str) -> None:
    """Run `script` on the data host as a transient unit of the postgres user, its
    sessions named `application`, until `until_sql` answers true (or fail)."""
    _sh(
        _host_of("data"),
        f"systemd-run --unit={unit} --uid=postgres --setenv=PGAPPNAME={application} "
        f"sh -c '{script}'",
    )
    deadline = time.monotonic() + CLIENT_WAIT_S
    while _db_value(until_sql) != "t":
        if time.monotonic() > deadline:
            raise FaultError(f"{unit}: not there after {CLIENT_WAIT_S} s ({until_sql})")
        time.sleep(1)


def _end_db_client(unit: str, application: str) -> None:
    _sh(
        _host_of("data"),
        f"systemctl stop {unit} 2>/dev/null || true\n"
        f"systemctl reset-failed {unit} 2>/dev/null || true",
    )
    _db_value(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"  # noqa: S608 - constants
        f" WHERE application_name = '{application}'"
    )


def _psql_session() -> str:
    return f"psql -p {topology.load().port('postgres')} -d shop -qX"


# Client sessions, as postgres_exporter's pg_stat_activity_count counts them (the
# background processes have no database).
_IN_USE = "SELECT count(*) FROM pg_stat_activity WHERE datname IS NOT NULL"
_ALLOWED = (
    "SELECT current_setting('max_connections')::int"
    " - current_setting('superuser_reserved_connections')::int"
)


def _hog_connections() -> None:
    """A client on the data host opens sessions until 90 % of the connections ordinary
    roles may open are in use, and leaves them idle (a leaking pool or batch job): the
    shop keeps what it holds, any new connection it needs comes out of the last 10 %."""
    allowed, in_use = int(_db_value(_ALLOWED)), int(_db_value(_IN_USE))
    wanted = math.ceil(HOG_SHARE * allowed)
    extra = wanted - in_use
    if extra <= 0:
        raise FaultError(f"{in_use} of {allowed} connections already in use")
    _start_db_client(
        HOG_UNIT,
        HOG_APPLICATION,
        f"for i in $(seq {extra}); do sleep infinity | {_psql_session()} & done; wait",
        f"SELECT ({_IN_USE}) >= {wanted}",
    )


def _hold_lock() -> None:
    """Someone opens a transaction by hand, locks the orders table against writes (what an
    unfinished `CREATE INDEX` or a hand-made fix does) and walks away: every checkout's
    insert waits on the lock until its statement timeout."""
    _start_db_client(
        LOCK_UNIT,
        LOCK_APPLICATION,
        f'(echo "BEGIN; LOCK TABLE {LOCKED_TABLE} IN SHARE MODE;"; exec sleep infinity)'
        f" | {_psql_session()}",
        "SELECT count(*) > 0 FROM pg_locks l JOIN pg_stat_activity a USING (pid)"  # noqa: S608 - constants
        f" WHERE a.application_name = '{LOCK_APPLICATION}' AND l.mode = 'ShareLock'"
        " AND l.granted",
    )


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


# --- the edge's certificate -------------------------------------------------------------

EDGE_BUNDLE = "/etc/haproxy/edge.pem"  # the edge role's edge_certificate_bundle
CERT_DAYS_LEFT = 2  # under TLSCertificateExpiryImminent's 3 days
KEPT_SUFFIX = ".before-drill"


def _edge_certificate() -> tuple[Path, Path]:
    """The edge's certificate and key as the pki role keeps them on the control node."""
    pki = lab_access.settings().state_dir / "pki"
    edge = _host_of("dmz")
    return pki / f"{edge}-edge.crt", pki / f"{edge}-edge.key"


def _serve_edge_certificate(cert: Path, key: Path) -> None:
    """Install certificate + key as the edge's HAProxy bundle and reload HAProxy."""
    bundle = base64.b64encode(cert.read_bytes().rstrip() + b"\n" + key.read_bytes()).decode()
    _sh(
        _host_of("dmz"),
        f"echo {bundle} | base64 -d > {EDGE_BUNDLE}.new\n"
        f"chown root:haproxy {EDGE_BUNDLE}.new && chmod 0640 {EDGE_BUNDLE}.new\n"
        f"mv {EDGE_BUNDLE}.new {EDGE_BUNDLE}\n"
        "systemctl reload haproxy",
    )


def _expiring_certificate() -> None:
    """The renewal that never ran: the edge's certificate, signed again by the lab's CA
    with two days left, on the control node (where the next converge finds it) and
    served by the edge."""
    cert, key = _edge_certificate()
    kept = cert.with_name(cert.name + KEPT_SUFFIX)
    if not kept.exists():
        shutil.copy2(cert, kept)
    pki = cert.parent
    cert.write_bytes(
        certificates.short_lived_copy(
            kept.read_bytes(),
            (pki / "ca.crt").read_bytes(),
            (pki / "ca.key").read_bytes(),
            CERT_DAYS_LEFT,
        )
    )
    _serve_edge_certificate(cert, key)


def _renewed_certificate() -> None:
    """The certificate from before the fault, unless a converge has renewed it since; the
    edge serving whichever it is."""
    cert, key = _edge_certificate()
    kept = cert.with_name(cert.name + KEPT_SUFFIX)
    if kept.exists():
        if certificates.days_left(cert.read_bytes()) <= CERT_DAYS_LEFT:
            kept.replace(cert)
        else:
            kept.unlink()
    _serve_edge_certificate(cert, key)


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
        Fault(
            "db-connections-exhausted",
            f"a client on the data host holds {HOG_SHARE:.0%} of PostgreSQL's connections, idle",
            bring=_hog_connections,
            clear=lambda: _end_db_client(HOG_UNIT, HOG_APPLICATION),
        ),
        Fault(
            "db-slow",
            f"a transaction left open by hand holds a lock on {LOCKED_TABLE} against writes",
            bring=_hold_lock,
            clear=lambda: _end_db_client(LOCK_UNIT, LOCK_APPLICATION),
        ),
        Fault(
            "cert-near-expiry",
            f"the edge serves a certificate {CERT_DAYS_LEFT} days from expiry (no renewal ran)",
            bring=_expiring_certificate,
            clear=_renewed_certificate,
        ),
        Fault(
            "disk-fill",
            f"{RUNAWAY_LOG} on {DISK_FILL_HOST} fills /var/log to "
            f"{1 - DISK_LEFT_SHARE:.0%} in one burst",
            bring=lambda: _fill_log_volume(DISK_FILL_HOST),
            clear=lambda: _free_log_volume(DISK_FILL_HOST),
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
