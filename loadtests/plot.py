"""The run's plot (PNG): throughput, latency percentiles, errors and CPU over time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: runs in CI and on servers

import matplotlib.pyplot as plt

from loadtests.phases import Phase

SMOOTHING_S = 5  # rolling mean over the per-second counts, to read the trend


@dataclass(frozen=True)
class Band:
    start_s: float
    end_s: float
    held: bool
    label: str


@dataclass
class PlotInput:
    title: str
    requests_per_s: dict[int, int]  # elapsed second -> requests
    failures_per_s: dict[int, int]
    timeline: Sequence[dict[str, float | int | None]]  # loadtests.recorder.TimelinePoint rows
    phases: Sequence[Phase]
    p95_limit_ms: float | None
    p99_limit_ms: float | None
    bands: Sequence[Band] = field(default_factory=list)  # measured step windows
    knee: tuple[str, float] | None = None  # (step label, rps)


def _rolling(values: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def _series(points: Sequence[dict[str, float | int | None]], key: str) -> tuple[list, list]:
    xs = [p["elapsed_s"] for p in points if p.get(key) is not None]
    ys = [p[key] for p in points if p.get(key) is not None]
    return xs, ys


def render(data: PlotInput, path: Path) -> Path:
    last = max([*data.requests_per_s, *(p.end_s for p in data.phases), 1])
    seconds = list(range(0, int(last) + 1))
    rps = [float(data.requests_per_s.get(s, 0)) for s in seconds]
    fails = [float(data.failures_per_s.get(s, 0)) for s in seconds]

    fig, (ax_rps, ax_lat, ax_err, ax_cpu) = plt.subplots(
        4, 1, figsize=(11, 11), sharex=True, height_ratios=[3, 3, 2, 2]
    )
    fig.suptitle(data.title)

    ax_rps.plot(seconds, rps, color="0.75", linewidth=0.8, label="requests/s")
    ax_rps.plot(
        seconds, _rolling(rps, SMOOTHING_S), color="tab:blue", label=f"{SMOOTHING_S} s mean"
    )
    offered_x, offered_y = [], []
    for phase in data.phases:
        offered_x += [phase.start_s, phase.end_s]
        offered_y += [phase.offered_rps or None, phase.offered_rps or None]
    ax_rps.plot(offered_x, offered_y, color="tab:green", linestyle="--", label="offered rps")
    ax_users = ax_rps.twinx()
    ax_users.plot(*_series(data.timeline, "users"), color="tab:purple", alpha=0.5, label="shoppers")
    ax_users.set_ylabel("shoppers")
    ax_rps.set_ylabel("requests / s")
    handles = ax_rps.get_legend_handles_labels()
    users_handles = ax_users.get_legend_handles_labels()
    ax_rps.legend(handles[0] + users_handles[0], handles[1] + users_handles[1], loc="upper left")

    for key, color, style in (
        ("p50_ms", "tab:green", "-"),
        ("p95_ms", "tab:orange", "-"),
        ("p99_ms", "tab:red", "--"),  # dashed: p95 stays visible where they coincide
    ):
        ax_lat.plot(
            *_series(data.timeline, key), color=color, linestyle=style, label=key.replace("_ms", "")
        )
    if data.p95_limit_ms is not None:
        ax_lat.axhline(data.p95_limit_ms, color="tab:orange", linestyle=":", label="p95 gate")
    if data.p99_limit_ms is not None:
        ax_lat.axhline(data.p99_limit_ms, color="tab:red", linestyle=":", label="p99 gate")
    ax_lat.set_ylabel("latency ms (per interval)")
    ax_lat.set_yscale("symlog", linthresh=10)
    ax_lat.set_ylim(bottom=0)
    ax_lat.legend(loc="upper left")

    ax_err.bar(seconds, fails, width=1.0, color="tab:red", label="failures/s")
    ax_err.set_ylabel("failures / s")
    ax_err.legend(loc="upper left")

    for key, label in (
        ("generator_cpu_pct", "load generator (busiest process)"),
        ("target_cpu_pct", "target"),
        ("machine_cpu_pct", "machine (all cores = 100)"),
    ):
        xs, ys = _series(data.timeline, key)
        if xs:
            ax_cpu.plot(xs, ys, label=label)
    ax_cpu.set_ylabel("CPU % (of one core)")
    ax_cpu.set_xlabel("seconds since start")
    if ax_cpu.lines:
        ax_cpu.legend(loc="upper left")

    for band in data.bands:
        for ax in (ax_rps, ax_lat, ax_err, ax_cpu):
            ax.axvspan(
                band.start_s,
                band.end_s,
                color="tab:green" if band.held else "tab:red",
                alpha=0.08,
                linewidth=0,
            )
    if data.knee is not None:
        label, knee_rps = data.knee
        ax_rps.axhline(knee_rps, color="black", linestyle="-.", linewidth=1)
        ax_rps.annotate(
            f"knee: {knee_rps:.1f} rps ({label})",
            xy=(0.99, knee_rps),
            xycoords=("axes fraction", "data"),
            ha="right",
            va="bottom",
        )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
