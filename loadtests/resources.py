"""What the target uses while it is loaded: its CPU, the machine's CPU, its database pool.

Target CPU comes from the processes listening on the target's port when the
target runs on this machine (the shop's workers included), otherwise from the
`process_cpu_seconds_total` of its /metrics when it exports one. The database
pool comes from `shop_db_pool_connections` (docs/contracts.md) on /metrics.
"""

from __future__ import annotations

import logging
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import psutil
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class TargetReading:
    target_cpu_pct: float | None
    target_cpu_source: str
    target_cpu_cores: float | None
    machine_cpu_pct: float | None
    db_pool_used_share: float | None


@dataclass(frozen=True)
class MetricsScrape:
    cpu_seconds: float | None
    pool_checked_out: float | None
    pool_max: float | None


def parse_metrics(text: str) -> MetricsScrape:
    cpu = checked_out = pool_max = None
    for family in text_string_to_metric_families(text):
        if family.name == "process_cpu_seconds":
            cpu = sum(s.value for s in family.samples if s.name == "process_cpu_seconds_total")
        elif family.name == "shop_db_pool_connections":
            by_state: dict[str, float] = {}
            for sample in family.samples:
                state = sample.labels.get("state", "")
                by_state[state] = by_state.get(state, 0.0) + sample.value
            checked_out = by_state.get("checked_out")
            pool_max = by_state.get("max")
    return MetricsScrape(cpu, checked_out, pool_max)


def _listens(process: psutil.Process, port: int) -> bool:
    try:
        return any(
            c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
            for c in process.net_connections(kind="tcp")
        )
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def listening_processes(port: int) -> list[psutil.Process]:
    """The server on `port`: its top listening process (a pre-fork master) and all children.

    psutil reports one holder per socket, while every pre-forked worker shares the
    master's listening socket: climb to the topmost holder, then take its tree.
    """
    holders = {
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.pid and c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
    }
    found: dict[int, psutil.Process] = {}
    for pid in holders:
        try:
            top = psutil.Process(pid)
            while (parent := top.parent()) is not None and _listens(parent, port):
                top = parent
            for process in [top, *top.children(recursive=True)]:
                found[process.pid] = process
        except psutil.NoSuchProcess:
            continue
    return list(found.values())


class TargetProbe:
    """Sample the target's resources; every reading covers the time since the previous one."""

    def __init__(
        self,
        base_url: str,
        port: int,
        *,
        is_local: bool,
        on_this_machine: bool,
        exclude_pids: set[int],
    ) -> None:
        self.metrics_url = base_url.rstrip("/") + "/metrics"
        self.port = port
        self.is_local = is_local
        self.on_this_machine = on_this_machine
        self.exclude_pids = exclude_pids
        self._processes: dict[int, psutil.Process] = {}
        self._last_cpu: tuple[float, float] | None = None  # (monotonic time, cpu seconds)
        self._metrics_ok = True
        # Prime the counters: psutil's cpu_percent(None) measures since its previous call.
        psutil.cpu_percent(None)

    def _scrape(self) -> MetricsScrape | None:
        if not self._metrics_ok:
            return None
        context = ssl.create_default_context()
        # Our own targets (lab edge) use a self-signed certificate; we only read figures.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(  # noqa: S310 - the URL is the vetted target
                self.metrics_url, timeout=SCRAPE_TIMEOUT_S, context=context
            ) as response:
                return parse_metrics(response.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403, 404):  # not exported to us: stop asking
                log.info("no resource figures from %s (%s)", self.metrics_url, exc)
                self._metrics_ok = False
            return None
        except (OSError, ValueError):
            return None  # a busy target may miss one scrape; the next sample tries again

    def _local_cpu_pct(self) -> float | None:
        current = {
            p.pid: p for p in listening_processes(self.port) if p.pid not in self.exclude_pids
        }
        if not current:
            return None
        total = 0.0
        for pid, process in current.items():
            known = self._processes.get(pid)
            try:
                # The first call on a Process object starts its measurement and returns 0.
                total += (known or process).cpu_percent(None)
            except psutil.NoSuchProcess:
                continue
            if known is None:
                self._processes[pid] = process
        for pid in set(self._processes) - set(current):
            del self._processes[pid]
        return total

    def sample(self) -> TargetReading:
        scrape = self._scrape()
        cpu_pct: float | None = None
        source = ""
        cores: float | None = None
        if self.is_local:
            cpu_pct = self._local_cpu_pct()
            if cpu_pct is not None:
                source, cores = f"processes on port {self.port}", float(psutil.cpu_count() or 1)
        if cpu_pct is None and scrape is not None and scrape.cpu_seconds is not None:
            now = time.monotonic()
            if self._last_cpu is not None and now > self._last_cpu[0]:
                cpu_pct = 100 * (scrape.cpu_seconds - self._last_cpu[1]) / (now - self._last_cpu[0])
                source = "process_cpu_seconds_total on /metrics"
            self._last_cpu = (now, scrape.cpu_seconds)
        pool_share = None
        if scrape is not None and scrape.pool_checked_out is not None and scrape.pool_max:
            pool_share = scrape.pool_checked_out / scrape.pool_max
        machine = psutil.cpu_percent(None) if self.on_this_machine else None
        return TargetReading(cpu_pct, source, cores, machine, pool_share)
