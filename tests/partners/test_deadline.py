"""One deadline per request: every retry, backoff and HTTP call keeps to it.

The mechanism on its own first, then the gateways against the real sandboxes
with latency / timeout knobs on every provider. The elapsed-time assertions are
bounds that a regression would blow by many seconds (the knobs hang for 30 s,
the timeouts are the production defaults), with generous slack.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from partners_support import Sandbox, fast_settings, metric

from app.partners.couriers import CourierUnavailable, build_courier_gateway
from app.partners.deadline import DeadlineExceeded, check, deadline, remaining
from app.partners.interfaces import (
    ChargeRequest,
    ChargeState,
    Parcel,
    PaymentChannel,
    PaymentStatus,
)
from app.partners.payments import build_payment_gateway
from app.partners.resilience import ProviderFailure, ResilientCaller
from app.partners.settings import PartnersSettings

SLACK_SECONDS = 1.5
HANG = {"timeout_rate": 100, "timeout_ms": 30_000}
SLOW = {"latency_ms": 30_000}
PARCEL = Parcel(1000, "UA", "01001", 1000, "EUR")


def charge_request() -> ChargeRequest:
    return ChargeRequest(
        idempotency_key=str(uuid.uuid4()),
        order_reference=f"ord-{uuid.uuid4().hex[:8]}",
        amount_minor=1000,
        currency="EUR",
        channel=PaymentChannel.CARD,
        payment_token="tok_visa",
        customer_reference="c",
    )


def production_like(**overrides: object) -> PartnersSettings:
    """The default timeouts, attempts and backoff: what a real checkout would wait."""
    defaults = PartnersSettings()
    values: dict[str, object] = {
        "payment_timeout_seconds": defaults.payment_timeout_seconds,
        "courier_timeout_seconds": defaults.courier_timeout_seconds,
        "retry_backoff_initial_seconds": defaults.retry_backoff_initial_seconds,
        "retry_backoff_max_seconds": defaults.retry_backoff_max_seconds,
        "breaker_failure_threshold": 50,
    }
    values.update(overrides)
    return fast_settings(**values)


def sandbox_requests(service: str) -> float:
    outcomes = ("ok", "declined", "rejected", "error", "timeout", "outage")
    return sum(metric("sandbox_requests_total", service=service, outcome=o) for o in outcomes)


# --- the mechanism ------------------------------------------------------------


async def test_deadlines_nest_take_the_earlier_and_follow_child_tasks():
    assert remaining() is None
    with deadline(10):
        outer = remaining()
        assert outer is not None and 9 < outer <= 10
        async with deadline(1):
            inner = remaining()
            assert inner is not None and inner <= 1
            with deadline(60):  # a later inner deadline cannot extend the budget
                assert (remaining() or 99) <= 1

            async def seen_by_a_child_task() -> float | None:
                return remaining()

            [seen] = await asyncio.gather(asyncio.create_task(seen_by_a_child_task()))
            assert seen is not None and seen <= 1
        assert (remaining() or 0) > 9
    assert remaining() is None
    with deadline(0), pytest.raises(DeadlineExceeded):
        check("a charge")
    with pytest.raises(ValueError):
        deadline(-1)
    assert PartnersSettings().checkout_deadline_seconds < 20  # the shop's graceful timeout


def caller(**overrides: float) -> ResilientCaller:
    values = {
        "attempts": 3,
        "backoff_initial_seconds": 5.0,
        "backoff_max_seconds": 5.0,
        "breaker_failure_threshold": 50,
        "breaker_reset_seconds": 60,
        **overrides,
    }
    return ResilientCaller(**values)  # type: ignore[arg-type]


async def test_caller_starts_no_attempt_and_sleeps_no_backoff_past_the_deadline():
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise ProviderFailure("p", "error", "HTTP 503")

    with deadline(0), pytest.raises(ProviderFailure) as spent:
        await caller().call("p", failing)
    assert spent.value.kind == "deadline" and calls == 0

    started = time.monotonic()
    with deadline(0.5), pytest.raises(ProviderFailure) as cut:
        await caller().call("p", failing)  # the next try is 5 s of backoff away
    assert cut.value.kind == "deadline" and calls == 1
    assert isinstance(cut.value.__cause__, ProviderFailure)
    assert time.monotonic() - started < 0.5


# --- payments -----------------------------------------------------------------


@pytest.mark.parametrize("knobs", [HANG, SLOW], ids=["hanging", "slow"])
async def test_card_charge_keeps_to_its_deadline_and_ends_unknown(payments: Sandbox, knobs: dict):
    for provider in ("card-primary", "card-secondary"):
        await payments.set_faults(provider, **knobs)
    gateway = build_payment_gateway(production_like(payments_base_url=payments.url))
    secondary_before = sandbox_requests("card-secondary")
    started = time.monotonic()
    try:
        with deadline(2.0):
            result = await gateway.charge(charge_request())
    finally:
        await gateway.aclose()
    elapsed = time.monotonic() - started
    assert elapsed < 2.0 + SLACK_SECONDS, elapsed
    # Sent, then no answer within the budget: it may have charged; nothing else is tried.
    assert result.status == PaymentStatus.UNKNOWN
    assert result.provider == "card-primary"
    assert sandbox_requests("card-secondary") == secondary_before


async def test_charge_out_of_deadline_before_anything_was_sent_is_an_error(payments: Sandbox):
    for provider in ("card-primary", "card-secondary"):
        await payments.set_faults(provider, outage=True)
    slow_backoff = {"retry_backoff_initial_seconds": 5, "retry_backoff_max_seconds": 5}
    gateway = build_payment_gateway(production_like(payments_base_url=payments.url, **slow_backoff))
    seen_before = {p: sandbox_requests(p) for p in ("card-primary", "card-secondary")}
    try:
        started = time.monotonic()
        with deadline(1.0):
            refused = await gateway.charge(charge_request())  # 503, then 5 s of backoff
        elapsed = time.monotonic() - started
        with deadline(0):
            spent = await gateway.charge(charge_request())
    finally:
        await gateway.aclose()
    assert refused.status == PaymentStatus.ERROR
    assert (refused.reason or "").startswith("deadline")
    assert elapsed < 1.0 + SLACK_SECONDS, elapsed
    assert spent.status == PaymentStatus.ERROR
    assert (spent.reason or "").startswith("deadline")
    # One attempt each under the first deadline, none under the spent one.
    for provider, before in seen_before.items():
        assert sandbox_requests(provider) == before + 1


async def test_lookup_keeps_to_the_deadline(payments: Sandbox):
    await payments.set_faults("card-primary", **SLOW)
    gateway = build_payment_gateway(production_like(payments_base_url=payments.url))
    started = time.monotonic()
    try:
        with deadline(1.0):
            found = await gateway.lookup(channel=PaymentChannel.CARD, idempotency_key="k-1")
    finally:
        await gateway.aclose()
    assert [f.state for f in found] == [ChargeState.UNKNOWN, ChargeState.ABSENT]
    assert time.monotonic() - started < 1.0 + SLACK_SECONDS


# --- couriers -----------------------------------------------------------------


@pytest.mark.parametrize("knobs", [HANG, SLOW], ids=["hanging", "slow"])
async def test_courier_quote_keeps_to_its_deadline(couriers: Sandbox, knobs: dict):
    for courier in ("swiftpost", "globex"):
        await couriers.set_faults(courier, **knobs)
    gateway = build_courier_gateway(production_like(couriers_base_url=couriers.url))
    started = time.monotonic()
    try:
        with deadline(2.0), pytest.raises(CourierUnavailable):
            await gateway.quote(PARCEL)
    finally:
        await gateway.aclose()
    elapsed = time.monotonic() - started
    assert elapsed < 2.0 + SLACK_SECONDS, elapsed


async def test_courier_quote_under_a_deadline_still_answers_when_couriers_do(couriers: Sandbox):
    await couriers.set_faults("swiftpost", **HANG)
    gateway = build_courier_gateway(production_like(couriers_base_url=couriers.url))
    started = time.monotonic()
    try:
        with deadline(1.5):
            quotes = await gateway.quote(PARCEL)
    finally:
        await gateway.aclose()
    assert time.monotonic() - started < 1.5 + SLACK_SECONDS
    assert {q.courier for q in quotes} == {"globex"}
