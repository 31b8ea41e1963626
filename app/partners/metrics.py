"""The shop-side partner metrics (names and labels: docs/contracts.md, "App metrics").

Defined on the default registry so the app's `/metrics` (multiprocess mode
under gunicorn) exports them beside the core's. Gauges say how values from
several worker processes combine.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from app.partners.interfaces import PaymentChannel

# "unknown": a charge whose answer was lost (timeout, dropped connection) and that the
# provider could not be asked about afterwards; counted once, beside its timed-out calls.
PAYMENT_OUTCOMES = ("approved", "declined", "error", "timeout", "unknown")
# What a lookup by idempotency key found at a provider (ChargeState values).
PAYMENT_LOOKUP_STATES = ("captured", "declined", "absent", "unknown")
FRAUD_DECISIONS = ("allow", "challenge", "block")
# What the courier gateway asks a courier (app/partners/couriers/gateway.py).
COURIER_OPERATIONS = ("quote", "shipment", "tracking")
# How one HTTP request to a courier ended. "refused": a 4xx other than 429 (an unserved
# destination, a bad customs declaration: the courier working); "rate_limited": a 429;
# "error": a 5xx other than 504, or no connection; "timeout": no answer in time, or a 504;
# "deadline": cut short by the caller's own time budget (app/partners/deadline.py), which
# is the shop's, not the courier's, as for the breaker.
COURIER_OUTCOMES = ("ok", "refused", "rate_limited", "error", "timeout", "deadline")
CIRCUIT_CLOSED, CIRCUIT_HALF_OPEN, CIRCUIT_OPEN = 0, 1, 2

PAYMENT_ATTEMPTS = Counter(
    "shop_payment_attempts_total",
    "Calls to a payment provider, by how they ended.",
    ["channel", "provider", "outcome"],
)
PAYMENT_DURATION = Histogram(
    "shop_payment_duration_seconds",
    "Time of one call to a payment provider.",
    ["channel", "provider"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10),
)
PAYMENT_LOOKUPS = Counter(
    "shop_payment_lookups_total",
    "Lookups of a charge by idempotency key at a payment provider, by what they found.",
    ["channel", "provider", "state"],
)
PAYMENT_CIRCUIT_STATE = Gauge(
    "shop_payment_circuit_state",
    "Circuit breaker per provider: 0 closed, 1 half-open, 2 open (worst worker wins).",
    ["provider"],
    multiprocess_mode="livemax",
)
FRAUD_DECISIONS_TOTAL = Counter(
    "shop_fraud_decisions_total", "Risk decisions on payments.", ["decision"]
)
COURIER_REQUESTS = Counter(
    "shop_courier_requests_total",
    "HTTP requests to a courier's API (each retry counts), by operation and how they ended.",
    ["courier", "operation", "outcome"],
)
SHIPMENTS = Counter(
    "shop_shipments_total",
    "Shipments by courier and state (created, failed, and tracking states seen).",
    ["courier", "state"],
)
# The outbox and quota live in the database: every worker reads the same
# numbers, so the most recent reading is the right one.
OUTBOX_DEPTH = Gauge(
    "shop_outbox_depth", "Mail messages waiting in the outbox.", multiprocess_mode="livemostrecent"
)
OUTBOX_OLDEST_AGE = Gauge(
    "shop_outbox_oldest_age_seconds",
    "Age of the oldest message waiting in the outbox.",
    multiprocess_mode="livemostrecent",
)
MAIL_SENT = Counter("shop_mail_sent_total", "Mail messages accepted by the SMTP server.")
MAIL_FAILED = Counter("shop_mail_failed_total", "Mail send attempts that failed.")
MAIL_HELD = Counter("shop_mail_held_total", "Mail messages held back by the sending quota.")
MAIL_QUOTA_REMAINING = Gauge(
    "shop_mail_quota_remaining",
    "Messages that may still be sent in the current window.",
    ["window"],
    multiprocess_mode="livemostrecent",
)


def declare_payment_series(routes: dict[PaymentChannel, list[str]]) -> None:
    """Create every payment series at zero, so alerts never see an absent series."""
    for channel, providers in routes.items():
        for provider in providers:
            for outcome in PAYMENT_OUTCOMES:
                PAYMENT_ATTEMPTS.labels(channel=channel.value, provider=provider, outcome=outcome)
            PAYMENT_DURATION.labels(channel=channel.value, provider=provider)
            PAYMENT_CIRCUIT_STATE.labels(provider=provider).set(CIRCUIT_CLOSED)


def declare_payment_lookup_series(routes: dict[PaymentChannel, list[str]]) -> None:
    for channel, providers in routes.items():
        for provider in providers:
            for state in PAYMENT_LOOKUP_STATES:
                PAYMENT_LOOKUPS.labels(channel=channel.value, provider=provider, state=state)


def declare_fraud_series() -> None:
    for decision in FRAUD_DECISIONS:
        FRAUD_DECISIONS_TOTAL.labels(decision=decision)


def declare_shipment_series(couriers: Iterable[str]) -> None:
    for courier in couriers:
        for state in ("created", "failed"):
            SHIPMENTS.labels(courier=courier, state=state)


def declare_courier_request_series(couriers: Iterable[str]) -> None:
    """Every courier request series at zero, so the error ratio is defined before a failure."""
    for courier in couriers:
        for operation in COURIER_OPERATIONS:
            for outcome in COURIER_OUTCOMES:
                COURIER_REQUESTS.labels(courier=courier, operation=operation, outcome=outcome)


def declare_mail_series() -> None:
    for window in ("day", "minute"):
        MAIL_QUOTA_REMAINING.labels(window=window)
