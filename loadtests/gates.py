"""SLO gates: the thresholds a run must meet, where they come from, and the verdict.

Thresholds come from `load_gates` in monitoring/slos.yml (the numbers the alert
rules are generated from), optionally overridden for one run. A journey without
its own entry there is held to the overall thresholds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import yaml

from loadtests.config import REPO_ROOT, ConfigError

SLOS_FILE = REPO_ROOT / "monitoring" / "slos.yml"
METRICS = ("error_ratio", "p95_ms", "p99_ms")
# Environment variables that override the overall thresholds (`make loadtest P95_MS=1`).
ENV_OVERRIDES = {"ERROR_RATIO": "error_ratio", "P95_MS": "p95_ms", "P99_MS": "p99_ms"}
OVERALL = "overall"


@dataclass(frozen=True)
class Thresholds:
    error_ratio: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None

    def updated(self, values: Mapping[str, float]) -> Thresholds:
        return replace(self, **values)

    def filled_from(self, fallback: Thresholds) -> Thresholds:
        return Thresholds(
            *(
                getattr(self, m) if getattr(self, m) is not None else getattr(fallback, m)
                for m in METRICS
            )
        )


@dataclass(frozen=True)
class GateSpec:
    overall: Thresholds
    per_journey: dict[str, Thresholds] = field(default_factory=dict)

    def for_journey(self, journey: str) -> Thresholds:
        return self.per_journey.get(journey, Thresholds()).filled_from(self.overall)


@dataclass(frozen=True)
class Measured:
    """What one scope (overall, or one journey) did in a run."""

    requests: int
    failures: int
    p95_ms: float
    p99_ms: float

    @property
    def error_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class GateResult:
    name: str  # e.g. "overall.p95_ms", "checkout.error_ratio", "capacity"
    measured: float
    limit: float
    passed: bool
    comparison: Literal["<=", ">="] = "<="
    detail: str = ""

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        limit = f"limit {self.comparison} {_fmt(self.limit)}"
        text = f"{verdict} {self.name}: {_fmt(self.measured)} ({limit})"
        return f"{text} - {self.detail}" if self.detail else text

    def as_dict(self) -> dict[str, object]:
        return {
            "gate": self.name,
            "measured": self.measured,
            "limit": self.limit,
            "comparison": self.comparison,
            "passed": self.passed,
            "detail": self.detail,
        }


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _parse_value(metric: str, text: str, source: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{source}: {metric} must be a number, got {text!r}") from None
    if value < 0 or (metric == "error_ratio" and value > 1):
        raise ConfigError(f"{source}: {metric} must be >= 0 (and <= 1 for error_ratio)")
    return value


def parse_overrides(
    gate_args: list[str], environ: Mapping[str, str] | None = None
) -> dict[str, dict[str, float]]:
    """Overrides by scope: {"overall": {"p95_ms": 1}, "checkout": {...}}.

    `gate_args` are "p95_ms=5" (overall) or "checkout.p99_ms=1500" (one journey);
    the environment's P95_MS, P99_MS and ERROR_RATIO set overall ones. Command-line
    arguments win over the environment.
    """
    environ = os.environ if environ is None else environ
    result: dict[str, dict[str, float]] = {}
    for variable, metric in ENV_OVERRIDES.items():
        if environ.get(variable, "").strip():
            result.setdefault(OVERALL, {})[metric] = _parse_value(
                metric, environ[variable], f"environment {variable}"
            )
    for arg in gate_args:
        key, sep, text = arg.partition("=")
        scope, _, metric = key.strip().rpartition(".")
        scope = scope or OVERALL
        if not sep or metric not in METRICS:
            raise ConfigError(
                f"gate override {arg!r} is not [<journey>.]<metric>=<value> "
                f"with metric one of {', '.join(METRICS)}"
            )
        result.setdefault(scope, {})[metric] = _parse_value(metric, text, f"gate {arg!r}")
    return result


def load_gate_spec(
    overrides: Mapping[str, Mapping[str, float]] | None = None, path: Path = SLOS_FILE
) -> GateSpec:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        gates = raw["load_gates"]
        overall = Thresholds(**{m: float(gates[m]) for m in METRICS})
        per_journey = {
            journey: Thresholds(**{m: float(v) for m, v in values.items()})
            for journey, values in (gates.get("per_journey") or {}).items()
        }
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read load_gates ({exc!r})") from None
    for scope, values in (overrides or {}).items():
        if scope == OVERALL:
            overall = overall.updated(values)
        else:
            per_journey[scope] = per_journey.get(scope, Thresholds()).updated(values)
    return GateSpec(overall=overall, per_journey=per_journey)


def check_scope(scope: str, measured: Measured, limits: Thresholds) -> list[GateResult]:
    results = []
    for metric in METRICS:
        limit = getattr(limits, metric)
        if limit is None:
            continue
        value = float(getattr(measured, metric))
        results.append(GateResult(f"{scope}.{metric}", value, limit, value <= limit))
    return results


def evaluate_slo(
    spec: GateSpec, overall: Measured, journeys: Mapping[str, Measured]
) -> list[GateResult]:
    """Overall and per-journey gates. A run without a single request fails."""
    results = [
        GateResult(
            f"{OVERALL}.requests",
            overall.requests,
            1,
            overall.requests >= 1,
            ">=",
            "a run that sent nothing proves nothing",
        )
    ]
    results += check_scope(OVERALL, overall, spec.overall)
    for journey in sorted(journeys):
        if journeys[journey].requests:
            results += check_scope(journey, journeys[journey], spec.for_journey(journey))
    unknown = sorted(set(spec.per_journey) - set(journeys))
    if unknown:
        # A gate for a journey the suite does not have would never be checked: say so.
        raise ConfigError(f"gates name unknown journeys: {', '.join(unknown)}")
    return results


def throughput_gate(
    label: str, achieved_rps: float, offered_rps: float, min_ratio: float
) -> GateResult:
    return GateResult(
        f"throughput.{label}",
        round(achieved_rps, 2),
        round(offered_rps * min_ratio, 2),
        achieved_rps >= offered_rps * min_ratio,
        ">=",
        f"rps achieved in the measured '{label}' window "
        f"vs {min_ratio:.0%} of {offered_rps:.1f} offered",
    )


def errors_in_generator_gate(exceptions: int) -> GateResult:
    return GateResult(
        "generator.exceptions",
        exceptions,
        0,
        exceptions == 0,
        "<=",
        "exceptions raised in the journeys' own code (see the Locust report)",
    )


def capacity_gate(knee_rps: float | None, peak_rps: float) -> GateResult:
    held = knee_rps or 0.0
    return GateResult(
        "capacity.knee_rps",
        round(held, 2),
        peak_rps,
        held >= peak_rps,
        ">=",
        "highest rps held within the SLO vs the peak profile's target",
    )


def all_passed(results: list[GateResult]) -> bool:
    return all(r.passed for r in results)
