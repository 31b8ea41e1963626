"""Watch a run while it happens: a timeline for the plot and a measured window per phase.

Runs in the Locust process that owns the statistics (the master, or the one
local process). Every `interval_s` it reads Locust's cumulative totals: the
difference to the previous reading gives the interval's latency percentiles,
and readings at a phase's window edges give the window's percentiles. Request
and failure counts per window come from Locust's per-second counters, which
are exact even when workers report late.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import gevent
import psutil

from loadtests import histogram
from loadtests.capacity import Resources, WindowStats
from loadtests.phases import Phase
from loadtests.resources import TargetProbe

if TYPE_CHECKING:
    from locust.env import Environment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimelinePoint:
    elapsed_s: float
    users: int
    p50_ms: float | None  # None: no request finished in the interval
    p95_ms: float | None
    p99_ms: float | None
    generator_cpu_pct: float | None
    target_cpu_pct: float | None
    machine_cpu_pct: float | None
    db_pool_used_share: float | None


@dataclass(frozen=True)
class _Snapshot:
    wall: float
    requests: int
    failures: int
    response_times: dict[int, int]


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


class RunRecorder:
    def __init__(
        self,
        environment: Environment,
        phases: list[Phase],
        probe: TargetProbe | None,
        interval_s: float = 2.0,
    ) -> None:
        self.environment = environment
        self.phases = phases
        self.probe = probe
        self.interval_s = interval_s
        self.timeline: list[TimelinePoint] = []
        self.wall_start: float | None = None
        self._previous: _Snapshot | None = None
        self._edges: dict[tuple[int, str], _Snapshot] = {}
        self._greenlet: gevent.Greenlet | None = None
        self._cpu_source: tuple[str, float | None] = ("", None)
        self.workers_seen = 0  # most Locust workers connected at once (distributed runs)
        self._own_process = psutil.Process()
        self._own_process.cpu_percent(None)

    # --- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        """Take the last reading and stop sampling (idempotent)."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None
            self._sample()

    def _loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                self._sample()
            except Exception:
                log.exception("recorder sample failed; continuing")
            gevent.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))

    # --- sampling ------------------------------------------------------------

    def _elapsed(self) -> float:
        shape = self.environment.shape_class
        return shape.get_run_time() if shape is not None else 0.0

    def _snapshot(self) -> _Snapshot:
        total = self.environment.stats.total
        return _Snapshot(
            time.time(), total.num_requests, total.num_failures, dict(total.response_times)
        )

    def _generator_cpu_pct(self) -> float:
        """The busiest Locust process: this one (measured here) or a worker (its heartbeat)."""
        values = [self._own_process.cpu_percent(None)]
        workers = getattr(self.environment.runner, "clients", None)
        if workers is not None:
            values += [float(w.cpu_usage) for w in workers.values()]
            self.workers_seen = max(self.workers_seen, len(workers))
        return max(values)

    def _sample(self) -> None:
        now = self._snapshot()
        elapsed = self._elapsed()
        if self.wall_start is None:
            self.wall_start = now.wall - elapsed
        for index, phase in enumerate(self.phases):
            if phase.measure_from_s is not None and elapsed >= phase.measure_from_s:
                self._edges.setdefault((index, "from"), now)
            if elapsed >= phase.end_s:
                self._edges.setdefault((index, "end"), now)
        interval = (
            histogram.subtract(now.response_times, self._previous.response_times)
            if self._previous
            else now.response_times
        )
        self._previous = now
        reading = self.probe.sample() if self.probe else None
        has_data = bool(interval)
        runner = self.environment.runner
        self.timeline.append(
            TimelinePoint(
                elapsed_s=round(elapsed, 2),
                users=runner.user_count if runner is not None else 0,
                p50_ms=histogram.percentile_ms(interval, 0.50) if has_data else None,
                p95_ms=histogram.percentile_ms(interval, 0.95) if has_data else None,
                p99_ms=histogram.percentile_ms(interval, 0.99) if has_data else None,
                generator_cpu_pct=self._generator_cpu_pct(),
                target_cpu_pct=reading.target_cpu_pct if reading else None,
                machine_cpu_pct=reading.machine_cpu_pct if reading else None,
                db_pool_used_share=reading.db_pool_used_share if reading else None,
            )
        )
        if reading and reading.target_cpu_source:
            self._cpu_source = (reading.target_cpu_source, reading.target_cpu_cores)

    # --- results -------------------------------------------------------------

    def per_second(self) -> tuple[dict[int, int], dict[int, int]]:
        """Requests and failures per wall-clock second (Locust's exact counters)."""
        total = self.environment.stats.total
        return dict(total.num_reqs_per_sec), dict(total.num_fail_per_sec)

    def windows(self) -> list[WindowStats]:
        """One WindowStats per measured phase that the run reached."""
        if self.wall_start is None:
            return []
        requests_per_s, failures_per_s = self.per_second()
        source, cores = self._cpu_source
        result = []
        for index, phase in enumerate(self.phases):
            start = self._edges.get((index, "from"))
            end = self._edges.get((index, "end")) or (self._previous if start else None)
            if phase.measure_from_s is None or start is None or end is None:
                continue
            t0 = self.wall_start + phase.measure_from_s
            t1 = min(self.wall_start + phase.end_s, end.wall)
            seconds = range(int(t0), int(t1))
            requests = sum(requests_per_s.get(s, 0) for s in seconds)
            failures = sum(failures_per_s.get(s, 0) for s in seconds)
            latencies = histogram.subtract(end.response_times, start.response_times)
            inside = [
                p
                for p in self.timeline
                if phase.measure_from_s <= p.elapsed_s <= phase.end_s + self.interval_s / 2
            ]
            result.append(
                WindowStats(
                    label=phase.label,
                    offered_rps=round(phase.offered_rps, 2),
                    users=phase.users,
                    seconds=round(len(seconds), 2),
                    requests=requests,
                    failures=failures,
                    achieved_rps=round(requests / len(seconds), 2) if len(seconds) else 0.0,
                    p50_ms=histogram.percentile_ms(latencies, 0.50),
                    p95_ms=histogram.percentile_ms(latencies, 0.95),
                    p99_ms=histogram.percentile_ms(latencies, 0.99),
                    resources=Resources(
                        generator_cpu_pct=_mean([p.generator_cpu_pct for p in inside]),
                        target_cpu_pct=_mean([p.target_cpu_pct for p in inside]),
                        target_cpu_cores=cores,
                        machine_cpu_pct=_mean([p.machine_cpu_pct for p in inside]),
                        db_pool_used_share=_mean([p.db_pool_used_share for p in inside]),
                        target_cpu_source=source,
                    ),
                    step_index=phase.step_index,
                )
            )
        return result

    def timeline_rows(self) -> list[dict[str, object]]:
        return [asdict(p) for p in self.timeline]
