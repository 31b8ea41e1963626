"""The end of a run: figures per request and per journey, the gates' verdict, the report files.

Called once, when Locust quits, in the process that holds the statistics.
Writes into the run folder:
  summary.json   per-request and per-journey stats, phases, timeline, gates, verdict
  plot.png       throughput, latency percentiles, errors and CPU over time
  capacity.md    step profiles only: the knee, what ran out, headroom vs peak
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import psutil

from loadtests import histogram, plot
from loadtests.capacity import CapacityReport, WindowStats, find_knee, render_markdown
from loadtests.config import Profile, ProfileBook, StepProfile
from loadtests.gates import (
    GateResult,
    GateSpec,
    Measured,
    all_passed,
    capacity_gate,
    errors_in_generator_gate,
    evaluate_slo,
    throughput_gate,
)
from loadtests.phases import Phase
from loadtests.reportfiles import CAPACITY_FILE, PLOT_FILE, SUMMARY_FILE
from loadtests.routes import JOURNEYS, OTHER_JOURNEY, journey_of


class StatsEntryLike(Protocol):
    """The parts of locust.stats.StatsEntry read here (kept structural: no locust import)."""

    name: str
    method: str | None
    num_requests: int
    num_failures: int
    response_times: dict[int, int]
    avg_response_time: float
    max_response_time: int


@dataclass(frozen=True)
class RunContext:
    profile_name: str
    profile: Profile
    book: ProfileBook
    phases: list[Phase]
    spec: GateSpec
    target: str
    workers: int
    run_dir: Path
    duration_override_s: float | None


def _measured(entries: Iterable[StatsEntryLike]) -> Measured:
    entries = list(entries)
    merged = histogram.merge(e.response_times for e in entries)
    return Measured(
        requests=sum(e.num_requests for e in entries),
        failures=sum(e.num_failures for e in entries),
        p95_ms=histogram.percentile_ms(merged, 0.95),
        p99_ms=histogram.percentile_ms(merged, 0.99),
    )


def request_rows(entries: Iterable[StatsEntryLike], elapsed_s: float) -> list[dict[str, object]]:
    rows = []
    for e in sorted(entries, key=lambda e: (e.name, e.method or "")):
        rows.append(
            {
                "method": e.method,
                "name": e.name,
                "journey": journey_of(e.method or "", e.name),
                "requests": e.num_requests,
                "failures": e.num_failures,
                "rps": round(e.num_requests / elapsed_s, 2) if elapsed_s else 0.0,
                "avg_ms": round(e.avg_response_time, 1),
                "p50_ms": histogram.percentile_ms(e.response_times, 0.50),
                "p95_ms": histogram.percentile_ms(e.response_times, 0.95),
                "p99_ms": histogram.percentile_ms(e.response_times, 0.99),
                "max_ms": round(e.max_response_time, 1),
            }
        )
    return rows


def journey_figures(entries: Iterable[StatsEntryLike]) -> dict[str, Measured]:
    by_journey: dict[str, list[StatsEntryLike]] = {j: [] for j in JOURNEYS}
    for e in entries:
        by_journey.setdefault(journey_of(e.method or "", e.name), []).append(e)
    if not by_journey.get(OTHER_JOURNEY):
        by_journey.pop(OTHER_JOURNEY, None)
    return {journey: _measured(group) for journey, group in by_journey.items()}


def judge(
    ctx: RunContext,
    overall: Measured,
    journeys: dict[str, Measured],
    windows: list[WindowStats],
    exceptions: int,
) -> tuple[list[GateResult], CapacityReport | None]:
    """The gates for this profile: SLO gates, or the capacity gate for a step profile."""
    gates = [errors_in_generator_gate(exceptions)]
    if isinstance(ctx.profile, StepProfile):
        report = find_knee(windows, ctx.spec.overall, ctx.profile.min_throughput, ctx.book.peak_rps)
        gates.append(capacity_gate(report.knee_rps, ctx.book.peak_rps))
        return gates, report
    gates += evaluate_slo(ctx.spec, overall, journeys)
    for window in windows:
        gates.append(
            throughput_gate(
                window.label, window.achieved_rps, window.offered_rps, ctx.profile.min_throughput
            )
        )
    return gates, None


def _plot_input(
    ctx: RunContext,
    wall_start: float,
    requests_per_s: dict[int, int],
    failures_per_s: dict[int, int],
    timeline: list[dict[str, object]],
    capacity: CapacityReport | None,
    passed: bool,
) -> plot.PlotInput:
    def rel(counts: dict[int, int]) -> dict[int, int]:
        return {int(s - wall_start): n for s, n in counts.items() if s >= wall_start - 1}

    bands = []
    knee = None
    if capacity is not None:
        for verdict in capacity.steps:
            phase = next(p for p in ctx.phases if p.label == verdict.window.label)
            bands.append(
                plot.Band(
                    phase.measure_from_s or phase.start_s, phase.end_s, verdict.held, phase.label
                )
            )
        if capacity.knee is not None:
            knee = (capacity.knee.label, capacity.knee.achieved_rps)
    verdict = "PASS" if passed else "FAIL"
    return plot.PlotInput(
        title=f"{ctx.profile_name} against {ctx.target}: {verdict}",
        requests_per_s=rel(requests_per_s),
        failures_per_s=rel(failures_per_s),
        timeline=timeline,  # type: ignore[arg-type]
        phases=ctx.phases,
        p95_limit_ms=ctx.spec.overall.p95_ms,
        p99_limit_ms=ctx.spec.overall.p99_ms,
        bands=bands,
        knee=knee,
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> dict[str, object]:
    return {
        "cpus": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "load_average_1m": round(os.getloadavg()[0], 2),  # other work sharing the machine
    }


def write_reports(
    ctx: RunContext,
    *,
    entries: list[StatsEntryLike],
    total: StatsEntryLike,
    elapsed_s: float,
    exceptions: int,
    windows: list[WindowStats],
    timeline: list[dict[str, object]],
    workers_seen: int,
    wall_start: float | None,
    requests_per_s: dict[int, int],
    failures_per_s: dict[int, int],
) -> tuple[bool, list[GateResult], dict[str, object]]:
    """Judge the run and write its files; returns (passed, gates, summary)."""
    overall = _measured([total])
    journeys = journey_figures(entries)
    gates, capacity = judge(ctx, overall, journeys, windows, exceptions)
    passed = all_passed(gates)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {"summary": SUMMARY_FILE}
    if wall_start is not None:
        plot.render(
            _plot_input(
                ctx, wall_start, requests_per_s, failures_per_s, timeline, capacity, passed
            ),
            ctx.run_dir / PLOT_FILE,
        )
        files["plot"] = PLOT_FILE
    if capacity is not None:
        (ctx.run_dir / CAPACITY_FILE).write_text(
            render_markdown(capacity, target=ctx.target, generated_at=now), encoding="utf-8"
        )
        files["capacity_report"] = CAPACITY_FILE
    summary: dict[str, object] = {
        "profile": ctx.profile_name,
        "profile_settings": ctx.profile.model_dump(),
        "traffic": ctx.book.traffic.model_dump(),
        "duration_override_s": ctx.duration_override_s,
        "target": ctx.target,
        "workers": ctx.workers,
        "workers_seen": workers_seen,
        "finished_at": now,
        "elapsed_s": round(elapsed_s, 1),
        "machine": machine_description(),
        "passed": passed,
        "gates": [g.as_dict() for g in gates],
        "failed_gates": [g.name for g in gates if not g.passed],
        "thresholds": {
            "overall": asdict(ctx.spec.overall),
            "journeys": {j: asdict(ctx.spec.for_journey(j)) for j in journeys},
        },
        "overall": {
            **asdict(overall),
            "error_ratio": overall.error_ratio,
            "rps": round(overall.requests / elapsed_s, 2) if elapsed_s else 0.0,
        },
        "journeys": {j: {**asdict(m), "error_ratio": m.error_ratio} for j, m in journeys.items()},
        "requests": request_rows(entries, elapsed_s),
        "phases": [{**asdict(w), "error_ratio": w.error_ratio} for w in windows],
        "capacity": capacity.as_dict() if capacity else None,
        "timeline": timeline,
        "files": files,
    }
    (ctx.run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return passed, gates, summary


def verdict_text(
    passed: bool, gates: list[GateResult], run_dir: Path, summary: dict[str, object]
) -> str:
    lines = ["", "Gates:"]
    lines += [f"  {g.line()}" for g in gates]
    capacity = summary.get("capacity")
    if isinstance(capacity, dict):
        knee = capacity["knee_rps"]
        lines.append(
            f"Knee: {knee:.1f} rps ({capacity['knee_step']})" if knee is not None else "Knee: none"
        )
        lines.append(f"Ran out of: {capacity['limiting_resource']}")
        if capacity["headroom"] is not None:
            lines.append(
                f"Headroom vs peak {capacity['peak_rps']:g} rps: {capacity['headroom']:+.0%}"
            )
    failed = [g.name for g in gates if not g.passed]
    lines.append(
        f"RESULT: {'PASS' if passed else 'FAIL'}"
        + (f" - failed gate(s): {', '.join(failed)}" if failed else "")
    )
    lines.append(f"Reports: {run_dir}")
    return "\n".join(lines)
