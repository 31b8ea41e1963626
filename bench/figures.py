"""Turning benchmark measurements into figures: throughput at the SLO, medians, spread, ratios.

Pure functions (no Locust import: importing it patches the process with gevent),
so tests/loadtests checks them without running a benchmark.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Level:
    """One concurrency level of one scenario, measured over a window."""

    users: int
    rps: float
    p95_ms: float
    p99_ms: float
    error_ratio: float
    generator_cpu_pct: float  # the Locust process, % of one core
    target_cpu_pct: float | None  # the target's processes, % of one core

    def within(self, p95_ms: float, p99_ms: float, error_ratio: float) -> bool:
        return self.p95_ms <= p95_ms and self.p99_ms <= p99_ms and self.error_ratio <= error_ratio


def at_slo(
    levels: Sequence[Level], p95_ms: float, p99_ms: float, error_ratio: float
) -> Level | None:
    """The level with the highest throughput that kept the SLO (None: none did)."""
    held = [lv for lv in levels if lv.within(p95_ms, p99_ms, error_ratio) and lv.rps > 0]
    return max(held, key=lambda lv: lv.rps) if held else None


@dataclass(frozen=True)
class Figure:
    scenario: str
    median_rps: float
    min_rps: float
    max_rps: float
    runs: int  # repetitions in which some level held the SLO
    median_generator_cpu_pct: float
    median_target_cpu_pct: float | None
    median_users: float

    @property
    def spread(self) -> float:
        """(max - min) / median: how much the repetitions disagree."""
        return (self.max_rps - self.min_rps) / self.median_rps if self.median_rps else 0.0


def summarise(scenario: str, best_levels: Sequence[Level | None]) -> Figure:
    held = [lv for lv in best_levels if lv is not None]
    if not held:
        return Figure(scenario, 0.0, 0.0, 0.0, 0, 0.0, None, 0.0)
    target_cpu = [lv.target_cpu_pct for lv in held if lv.target_cpu_pct is not None]
    return Figure(
        scenario=scenario,
        median_rps=statistics.median(lv.rps for lv in held),
        min_rps=min(lv.rps for lv in held),
        max_rps=max(lv.rps for lv in held),
        runs=len(held),
        median_generator_cpu_pct=statistics.median(lv.generator_cpu_pct for lv in held),
        median_target_cpu_pct=statistics.median(target_cpu) if target_cpu else None,
        median_users=statistics.median(lv.users for lv in held),
    )


def ratio(numerator: Figure, denominator: Figure) -> float | None:
    return numerator.median_rps / denominator.median_rps if denominator.median_rps else None


def interleaved_order(scenarios: Sequence[str], repetition: int) -> list[str]:
    """Rotate the order every repetition, so no scenario always runs first (or last)."""
    shift = repetition % len(scenarios)
    return [*scenarios[shift:], *scenarios[:shift]]
