"""Every metric the shop exports: the source of truth for metric names (docs/contracts.md).

Multiprocess mode: when PROMETHEUS_MULTIPROC_DIR is set before this module is
imported (the serve command does that), every worker writes its samples to
that directory and /metrics aggregates them. Gauges say how to combine the
workers' values (`multiprocess_mode`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

# Boundaries fit the SLOs in monitoring/slos.yml (checkout threshold 1.0 s, p95 gate 0.5 s).
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)

ORDER_OUTCOMES = ("placed", "paid", "cancelled", "refunded", "payment_failed")
CHECKOUT_FAILURE_REASONS = (
    "out_of_stock",
    "payment_declined",
    "payment_error",
    "fraud_blocked",
    "fraud_challenged",  # the risk check asked for a TOTP step-up that was missing or wrong
    "invalid",
    "cart_changed",  # the cart changed between the quote and risk check and the order
)
RECONCILER_OUTCOMES = (
    "paid",  # a capture was found at a provider
    "cancelled",  # no provider took the money: cancelled, stock returned
    "unknown",  # a provider could not be asked: tried again next pass
    "amount_mismatch",  # a provider captured another amount: for a person
    "refunded",  # a refund the provider had not confirmed is confirmed now
    "refund_pending",  # still not confirmed
    "already_settled",  # a checkout or webhook settled it meanwhile
    "error",
)
UNSETTLED_STATES = ("pending_payment", "refund_pending")
CACHE_NAMES = ("product", "search", "taxonomy")
CACHE_RESULTS = ("hit", "miss")
POOL_STATES = ("checked_out", "idle", "max")

# --- HTTP ---------------------------------------------------------------------
http_requests_total = Counter(
    "shop_http_requests_total",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
)
http_request_duration_seconds = Histogram(
    "shop_http_request_duration_seconds",
    "HTTP request latency by route template, method and status.",
    ["route", "method", "status"],
    buckets=HTTP_BUCKETS,
)
http_requests_in_progress = Gauge(
    "shop_http_requests_in_progress",
    "HTTP requests being served now.",
    multiprocess_mode="livesum",
)

# --- business -----------------------------------------------------------------
orders_total = Counter("shop_orders_total", "Orders by outcome.", ["outcome"])
reconciler_orders_total = Counter(
    "shop_reconciler_orders_total",
    "Unsettled orders the reconciler looked at, by what it did.",
    ["outcome"],
)
orders_oldest_unsettled_age_seconds = Gauge(
    "shop_orders_oldest_unsettled_age_seconds",
    "Age of the oldest order left pending_payment or refund_pending (0: none).",
    ["state"],
    multiprocess_mode="livemax",
)
revenue_minor_units_total = Counter(
    "shop_revenue_minor_units_total",
    "Revenue of paid orders in minor units (cents) of the currency.",
    ["currency"],
)
checkout_failures_total = Counter(
    "shop_checkout_failures_total", "Checkouts that did not place a paid order.", ["reason"]
)
cache_requests_total = Counter(
    "shop_cache_requests_total", "Catalog cache look-ups.", ["cache", "result"]
)
db_pool_connections = Gauge(
    "shop_db_pool_connections",
    "Database pool connections by state (summed over workers).",
    ["state"],
    multiprocess_mode="livesum",
)
bestsellers_out_of_stock = Gauge(
    "shop_bestsellers_out_of_stock",
    "How many of the 20 best-selling products have no stock in any warehouse.",
    multiprocess_mode="livemax",
)
build_info = Gauge(
    "shop_build_info",
    "Build of the running shop (value 1).",
    ["version", "revision"],
    multiprocess_mode="livemax",
)

# --- partners -------------------------------------------------------------------
# Payment, fraud, shipment, outbox and mail metrics are defined by the partner
# integrations in app/partners/metrics.py (their owner); importing it here puts
# them on the same registry, so this module's import registers every app metric.
from app.partners import metrics as partner_metrics  # noqa: E402


def precreate_series(*, currency: str) -> None:
    """Create at 0 every labelled series an alert watches: an alert must see 0, not nothing."""
    for outcome in ORDER_OUTCOMES:
        orders_total.labels(outcome)
    for reason in CHECKOUT_FAILURE_REASONS:
        checkout_failures_total.labels(reason)
    for outcome in RECONCILER_OUTCOMES:
        reconciler_orders_total.labels(outcome)
    for state in UNSETTLED_STATES:
        orders_oldest_unsettled_age_seconds.labels(state)
    revenue_minor_units_total.labels(currency)
    for cache in CACHE_NAMES:
        for result in CACHE_RESULTS:
            cache_requests_total.labels(cache, result)
    partner_metrics.declare_fraud_series()
    partner_metrics.declare_mail_series()


def precreate_route_series(routes: Iterable[tuple[str, str]]) -> None:
    """The 5xx series of every route (the availability SLO divides by them)."""
    for path, method in routes:
        http_requests_total.labels(path, method, "500")


def is_multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def render_latest() -> tuple[bytes, str]:
    """The exposition text for /metrics: all workers' samples in multiprocess mode."""
    if is_multiprocess():
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def mark_worker_dead(pid: int) -> None:
    """Called by the server master when a worker exits (drops its live gauges)."""
    if is_multiprocess():
        prometheus_multiprocess.mark_process_dead(pid)
