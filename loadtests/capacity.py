"""Capacity from a step run: which steps held the SLO, the knee, what ran out, the headroom.

The knee is the highest rps achieved by a step that held the SLO, counting only
the steps before the first one that broke it: a shop that broke at 60 rps does
not reliably hold 70 just because one later step got lucky on a noisy machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from loadtests.gates import Thresholds

# A single Locust process is one gevent loop on one core: past this it measures itself.
GENERATOR_SATURATED_PCT = 90.0
# Share of the available CPU (all cores) above which a CPU counts as exhausted.
CPU_SATURATED_SHARE = 0.85
DB_POOL_SATURATED_SHARE = 0.95
# Cores' worth of CPU used by neither target nor generator, above which the machine is noisy.
OTHERS_MAJORITY = 0.5


@dataclass(frozen=True)
class Resources:
    """Mean use over a window; None where it could not be measured."""

    generator_cpu_pct: float | None = None  # busiest Locust process, % of one core
    target_cpu_pct: float | None = None  # all the target's processes, % of one core
    target_cpu_cores: float | None = None  # cores the target can use
    machine_cpu_pct: float | None = None  # this machine, % of all cores (local targets)
    db_pool_used_share: float | None = None  # shop_db_pool_connections checked_out / max
    target_cpu_source: str = ""  # where target_cpu_pct came from


@dataclass(frozen=True)
class WindowStats:
    """The measured part of one phase of a run."""

    label: str
    offered_rps: float
    users: int
    seconds: float
    requests: int
    failures: int
    achieved_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    resources: Resources = field(default_factory=Resources)
    step_index: int | None = None

    @property
    def error_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class StepVerdict:
    window: WindowStats
    held: bool
    breaches: tuple[str, ...]


@dataclass(frozen=True)
class CapacityReport:
    steps: tuple[StepVerdict, ...]
    knee: WindowStats | None  # None: not even the first step held
    broke_at: WindowStats | None  # None: every step held (capacity is at least the knee)
    limiting_resource: str
    peak_rps: float
    limits: Thresholds
    min_throughput: float

    @property
    def knee_rps(self) -> float | None:
        return self.knee.achieved_rps if self.knee else None

    @property
    def headroom(self) -> float | None:
        """Knee over the peak target, minus one: 0.25 is 25 % more than peak."""
        return None if self.knee is None else self.knee.achieved_rps / self.peak_rps - 1

    def as_dict(self) -> dict[str, object]:
        return {
            "knee_rps": self.knee_rps,
            "knee_step": self.knee.label if self.knee else None,
            "broke_at_step": self.broke_at.label if self.broke_at else None,
            "limiting_resource": self.limiting_resource,
            "peak_rps": self.peak_rps,
            "headroom": self.headroom,
            "limits": asdict(self.limits),
            "min_throughput": self.min_throughput,
            "steps": [
                {
                    **asdict(v.window),
                    "error_ratio": v.window.error_ratio,
                    "held": v.held,
                    "breaches": list(v.breaches),
                }
                for v in self.steps
            ],
        }


def judge_step(window: WindowStats, limits: Thresholds, min_throughput: float) -> StepVerdict:
    breaches = []
    if window.requests == 0:
        breaches.append("no requests")
    if limits.error_ratio is not None and window.error_ratio > limits.error_ratio:
        breaches.append(f"error ratio {window.error_ratio:.4f} > {limits.error_ratio:g}")
    if limits.p95_ms is not None and window.p95_ms > limits.p95_ms:
        breaches.append(f"p95 {window.p95_ms:.0f} ms > {limits.p95_ms:g} ms")
    if limits.p99_ms is not None and window.p99_ms > limits.p99_ms:
        breaches.append(f"p99 {window.p99_ms:.0f} ms > {limits.p99_ms:g} ms")
    if window.achieved_rps < window.offered_rps * min_throughput:
        breaches.append(
            f"throughput {window.achieved_rps:.1f} rps < {min_throughput:.0%} "
            f"of {window.offered_rps:.1f} offered"
        )
    return StepVerdict(window, not breaches, tuple(breaches))


def _others_pct(r: Resources) -> float | None:
    """CPU (% of one core) the machine spent outside the target and the generator."""
    if None in (r.machine_cpu_pct, r.target_cpu_pct, r.target_cpu_cores, r.generator_cpu_pct):
        return None
    assert r.machine_cpu_pct is not None and r.target_cpu_cores is not None
    used = r.machine_cpu_pct * r.target_cpu_cores
    return max(0.0, used - (r.target_cpu_pct or 0.0) - (r.generator_cpu_pct or 0.0))


def limiting_resource(window: WindowStats) -> str:
    """What ran out in `window`, from the resources we measured."""
    r = window.resources
    if r.generator_cpu_pct is not None and r.generator_cpu_pct >= GENERATOR_SATURATED_PCT:
        return (
            f"load generator CPU ({r.generator_cpu_pct:.0f}% of a core): the figure is a lower "
            "bound of the shop's capacity; add WORKERS"
        )
    if r.machine_cpu_pct is not None and r.machine_cpu_pct >= CPU_SATURATED_SHARE * 100:
        share = (
            f"target {r.target_cpu_pct:.0f}% of a core, " if r.target_cpu_pct is not None else ""
        )
        others = _others_pct(r)
        if others is not None and others >= 100 * OTHERS_MAJORITY:
            return (
                f"CPU of this machine ({r.machine_cpu_pct:.0f}% of all cores), mostly taken by "
                f"other processes ({others:.0f}% of a core besides the target and the "
                "generator): a noisy machine, repeat the run on a quiet one"
            )
        return (
            f"CPU of this machine ({r.machine_cpu_pct:.0f}% of all cores; {share}"
            "shared by the shop and the load generator)"
        )
    if (
        r.target_cpu_pct is not None
        and r.target_cpu_cores
        and r.target_cpu_pct >= CPU_SATURATED_SHARE * 100 * r.target_cpu_cores
    ):
        return (
            f"target CPU ({r.target_cpu_pct:.0f}% of a core of {r.target_cpu_cores:g} "
            f"usable, from {r.target_cpu_source})"
        )
    if r.db_pool_used_share is not None and r.db_pool_used_share >= DB_POOL_SATURATED_SHARE:
        return f"database connection pool ({r.db_pool_used_share:.0%} checked out)"
    measured = [
        name
        for name, value in (
            ("generator CPU", r.generator_cpu_pct),
            ("target CPU", r.target_cpu_pct),
            ("machine CPU", r.machine_cpu_pct),
            ("DB pool", r.db_pool_used_share),
        )
        if value is not None
    ]
    if not measured:
        return "unknown (no resource could be measured for this target)"
    return f"unknown: none of the measured resources ({', '.join(measured)}) was saturated"


def find_knee(
    windows: list[WindowStats], limits: Thresholds, min_throughput: float, peak_rps: float
) -> CapacityReport:
    verdicts = tuple(judge_step(w, limits, min_throughput) for w in windows)
    knee: WindowStats | None = None
    broke_at: WindowStats | None = None
    for verdict in verdicts:
        if not verdict.held:
            broke_at = verdict.window
            break
        if knee is None or verdict.window.achieved_rps > knee.achieved_rps:
            knee = verdict.window
    if broke_at is not None:
        resource = limiting_resource(broke_at)
    elif windows:
        resource = (
            f"not reached: every step held; at the last step {limiting_resource(windows[-1])}"
        )
    else:
        resource = "no steps were measured"
    return CapacityReport(verdicts, knee, broke_at, resource, peak_rps, limits, min_throughput)


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def render_markdown(report: CapacityReport, *, target: str, generated_at: str) -> str:
    if report.knee is None:
        knee_line = "**Knee: none** - not even the first step held the SLO."
    else:
        knee_line = (
            f"**Knee: {report.knee.achieved_rps:.1f} rps** held within the SLO "
            f"({report.knee.label}, {report.knee.users} shoppers, "
            f"p95 {report.knee.p95_ms:.0f} ms, p99 {report.knee.p99_ms:.0f} ms)."
        )
    if report.broke_at is None:
        broke_line = "No step broke the SLO: capacity is at least the knee."
    else:
        broke_verdict = next(v for v in report.steps if v.window is report.broke_at)
        broke_line = f"Broke at {report.broke_at.label}: {'; '.join(broke_verdict.breaches)}."
    headroom = report.headroom
    headroom_line = (
        "Headroom: none (no step held)."
        if headroom is None
        else f"Headroom against the peak target ({report.peak_rps:g} rps): {headroom:+.0%}"
        + (" - the peak is covered." if headroom >= 0 else " - the peak is NOT covered.")
    )
    lim = report.limits
    lines = [
        "# Capacity report",
        "",
        f"Target {target}, generated {generated_at}.",
        f"SLO per step: error ratio <= {lim.error_ratio:g}, p95 <= {lim.p95_ms:g} ms, "
        f"p99 <= {lim.p99_ms:g} ms, achieved >= {report.min_throughput:.0%} of offered rps.",
        "",
        knee_line,
        "",
        broke_line,
        "",
        f"Resource that ran out: {report.limiting_resource}.",
        "",
        headroom_line,
        "",
        "| step | shoppers | offered rps | achieved rps | p50 ms | p95 ms | p99 ms | errors "
        "| generator CPU % | target CPU % | machine CPU % | DB pool | held |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in report.steps:
        w, r = v.window, v.window.resources
        lines.append(
            f"| {w.label} | {w.users} | {w.offered_rps:.1f} | {w.achieved_rps:.1f} "
            f"| {w.p50_ms:.0f} | {w.p95_ms:.0f} | {w.p99_ms:.0f} | {w.error_ratio:.2%} "
            f"| {_cell(r.generator_cpu_pct, '.0f')} | {_cell(r.target_cpu_pct, '.0f')} "
            f"| {_cell(r.machine_cpu_pct, '.0f')} | {_cell(r.db_pool_used_share, '.0%')} "
            f"| {'yes' if v.held else 'no: ' + '; '.join(v.breaches)} |"
        )
    return "\n".join(lines) + "\n"
