"""The sandboxes' own metrics (contract: docs/contracts.md, "Sandboxes").

A sandbox process serves these on its `/metrics`; in the lab, all sandboxes run
in one process and the `partners_metrics` port serves them together.
"""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import Counter, Gauge


class Outcome(StrEnum):
    """How one request to a sandbox ended."""

    OK = "ok"
    DECLINED = "declined"  # payments: the provider said no
    REJECTED = "rejected"  # the request was invalid (4xx)
    ERROR = "error"  # injected server error (5xx)
    TIMEOUT = "timeout"  # injected hang; the caller gives up first
    OUTAGE = "outage"  # injected full outage


REQUESTS = Counter(
    "sandbox_requests_total",
    "Requests a sandbox service handled, by how they ended.",
    ["service", "outcome"],
)

FAULT_SETTING = Gauge(
    "sandbox_fault_setting",
    "Current value of a sandbox fault knob (rates in percent, outage 0/1, latency in ms).",
    ["service", "knob"],
    multiprocess_mode="livemax",
)


def record(service: str, outcome: Outcome) -> None:
    REQUESTS.labels(service=service, outcome=outcome.value).inc()


def declare(service: str) -> None:
    """Create every series of a service at zero, so alerts never see an absent series."""
    for outcome in Outcome:
        REQUESTS.labels(service=service, outcome=outcome.value)
