"""A lost answer at a payment provider: ask it by idempotency key, never charge twice.

Real payment sandbox over HTTP; faults only by its knobs. The ledgers are read
through the sandbox's own API (`GET /{provider}/v1/charges?idempotency_key=`).
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
from partners_support import Sandbox, fast_settings, metric

from app.partners.interfaces import (
    ChargeRequest,
    ChargeState,
    PaymentChannel,
    PaymentStatus,
)
from app.partners.payments import HttpPaymentGateway, build_payment_gateway


def charge_request(token: str = "tok_visa", key: str | None = None) -> ChargeRequest:
    return ChargeRequest(
        idempotency_key=key or str(uuid.uuid4()),
        order_reference=f"ord-{uuid.uuid4().hex[:8]}",
        amount_minor=4999,
        currency="EUR",
        channel=PaymentChannel.CARD,
        payment_token=token,
        customer_reference="cust-1",
    )


async def held_for(sandbox: Sandbox, provider: str, key: str) -> list[dict]:
    """What `provider` holds for `key`, asked through the sandbox's HTTP API."""
    response = await sandbox.admin.get(
        f"/{provider}/v1/charges", params={"idempotency_key": key}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


def attempts(provider: str, outcome: str) -> float:
    return metric("shop_payment_attempts_total", channel="card", provider=provider, outcome=outcome)


def lookups(provider: str, state: str) -> float:
    return metric("shop_payment_lookups_total", channel="card", provider=provider, state=state)


def sandbox_requests(provider: str) -> float:
    outcomes = ("ok", "declined", "rejected", "error", "timeout", "outage")
    return sum(metric("sandbox_requests_total", service=provider, outcome=o) for o in outcomes)


@pytest.fixture()
async def gateway(payments: Sandbox) -> AsyncIterator[HttpPaymentGateway]:
    gw = build_payment_gateway(fast_settings(payments_base_url=payments.url))
    yield gw
    await gw.aclose()


# --- A: the lookup ------------------------------------------------------------


async def test_sandbox_answers_the_charges_it_holds_for_an_idempotency_key(
    payments: Sandbox, gateway: HttpPaymentGateway
):
    request = charge_request()
    charged = await gateway.charge(request)
    [held] = await held_for(payments, "card-primary", request.idempotency_key)
    assert held["id"] == charged.provider_reference
    assert held["idempotency_key"] == request.idempotency_key
    assert held["status"] == "succeeded"
    assert await held_for(payments, "card-primary", "no-such-key") == []
    assert await held_for(payments, "card-secondary", request.idempotency_key) == []
    both = await payments.admin.get(
        "/card-primary/v1/charges",
        params={"idempotency_key": request.idempotency_key, "order_reference": "other"},
    )
    assert both.json()["items"] == []


async def test_lookup_reports_what_each_provider_of_the_channel_holds(
    payments: Sandbox, gateway: HttpPaymentGateway
):
    approved = charge_request()
    charged = await gateway.charge(approved)
    found = await gateway.lookup(
        channel=PaymentChannel.CARD, idempotency_key=approved.idempotency_key
    )
    assert [(f.provider, f.state) for f in found] == [
        ("card-primary", ChargeState.CAPTURED),
        ("card-secondary", ChargeState.ABSENT),
    ]
    assert found[0].provider_reference == charged.provider_reference
    assert (found[0].amount_minor, found[0].currency) == (4999, "EUR")

    declined = charge_request(token="tok_chargeDeclined")
    await gateway.charge(declined)
    [primary, _] = await gateway.lookup(
        channel=PaymentChannel.CARD, idempotency_key=declined.idempotency_key
    )
    assert primary.state == ChargeState.DECLINED and primary.provider_reference

    await payments.set_faults("card-secondary", outage=True)
    before = lookups("card-secondary", "unknown")
    [_, secondary] = await gateway.lookup(
        channel=PaymentChannel.CARD, idempotency_key=approved.idempotency_key
    )
    assert secondary.state == ChargeState.UNKNOWN
    assert lookups("card-secondary", "unknown") == before + 1


# --- B: no double charge on failover -----------------------------------------


@pytest.mark.parametrize(
    ("timeout_ms", "client_timeout"),
    [(100, 0.5), (3000, 0.3)],
    ids=["answered-504", "client-timed-out"],
)
async def test_charge_taken_then_answer_lost_is_approved_once_at_the_primary(
    payments: Sandbox, timeout_ms: int, client_timeout: float
):
    await payments.set_faults("card-primary", capture_timeout_rate=100, timeout_ms=timeout_ms)
    gateway = build_payment_gateway(
        fast_settings(payments_base_url=payments.url, payment_timeout_seconds=client_timeout)
    )
    captured_before = lookups("card-primary", "captured")
    request = charge_request()
    try:
        result = await gateway.charge(request)
    finally:
        await gateway.aclose()
    [held] = await held_for(payments, "card-primary", request.idempotency_key)
    assert result.status == PaymentStatus.APPROVED
    assert result.provider == "card-primary"
    assert result.provider_reference == held["id"]
    assert await held_for(payments, "card-secondary", request.idempotency_key) == []
    assert lookups("card-primary", "captured") == captured_before + 1


async def test_decline_taken_then_answer_lost_is_declined_and_not_failed_over(
    payments: Sandbox, gateway: HttpPaymentGateway
):
    await payments.set_faults("card-primary", capture_timeout_rate=100, timeout_ms=100)
    request = charge_request(token="tok_chargeDeclinedInsufficientFunds")
    result = await gateway.charge(request)
    assert result.status == PaymentStatus.DECLINED
    assert result.provider == "card-primary"
    assert result.reason == "insufficient_funds"
    assert await held_for(payments, "card-secondary", request.idempotency_key) == []


async def test_answer_lost_and_circuit_open_for_the_lookup_is_unknown_and_charges_nowhere_else(
    payments: Sandbox,
):
    # Three lost answers open the primary's circuit: the lookup cannot be made.
    await payments.set_faults("card-primary", capture_timeout_rate=100, timeout_ms=100)
    gateway = build_payment_gateway(
        fast_settings(payments_base_url=payments.url, breaker_failure_threshold=3)
    )
    unknown_before = attempts("card-primary", "unknown")
    request = charge_request()
    try:
        result = await gateway.charge(request)
    finally:
        await gateway.aclose()
    assert result.status == PaymentStatus.UNKNOWN
    assert result.provider == "card-primary"
    assert result.provider_reference is None
    assert await held_for(payments, "card-secondary", request.idempotency_key) == []
    assert len(await held_for(payments, "card-primary", request.idempotency_key)) == 1
    assert attempts("card-primary", "unknown") == unknown_before + 1


async def test_slow_primary_that_charges_after_the_shop_gave_up_is_unknown_not_failed_over(
    payments: Sandbox,
):
    # Slower than the client's timeout, charges and lookups alike: the charge is booked
    # after the shop stopped waiting, and the lookup times out the same way.
    await payments.set_faults("card-primary", latency_ms=1500)
    gateway = build_payment_gateway(
        fast_settings(payments_base_url=payments.url, payment_timeout_seconds=0.3)
    )
    request = charge_request()
    try:
        result = await gateway.charge(request)
    finally:
        await gateway.aclose()
    assert result.status == PaymentStatus.UNKNOWN
    assert result.provider == "card-primary"
    await payments.admin.delete("/admin/faults/card-primary")
    assert await held_for(payments, "card-secondary", request.idempotency_key) == []
    # ... and the primary did take it: failing over would have charged twice.
    for _ in range(100):
        if await held_for(payments, "card-primary", request.idempotency_key):
            break
        await asyncio.sleep(0.05)
    assert len(await held_for(payments, "card-primary", request.idempotency_key)) == 1


async def test_timeout_with_nothing_taken_is_looked_up_then_failed_over(payments: Sandbox):
    # The primary hangs before charging; once its last attempt hangs, it recovers, so
    # the lookup finds no charge: failing over is safe.
    await payments.set_faults("card-primary", timeout_rate=100, timeout_ms=5000)
    gateway = build_payment_gateway(
        fast_settings(payments_base_url=payments.url, payment_timeout_seconds=1.0)
    )
    hangs_before = metric("sandbox_requests_total", service="card-primary", outcome="timeout")
    absent_before = lookups("card-primary", "absent")
    request = charge_request()
    try:
        charging = asyncio.create_task(gateway.charge(request))
        for _ in range(3000):  # up to 15 s; the third attempt starts hanging after ~2 s
            hangs = metric("sandbox_requests_total", service="card-primary", outcome="timeout")
            if hangs >= hangs_before + 3:
                break
            await asyncio.sleep(0.005)
        await payments.admin.delete("/admin/faults/card-primary")  # before its 1 s runs out
        result = await charging
    finally:
        await gateway.aclose()
    assert result.status == PaymentStatus.APPROVED
    assert result.provider == "card-secondary"
    assert lookups("card-primary", "absent") == absent_before + 1
    assert await held_for(payments, "card-primary", request.idempotency_key) == []
    [held] = await held_for(payments, "card-secondary", request.idempotency_key)
    assert held["id"] == result.provider_reference


@pytest.mark.parametrize("knobs", [{"outage": True}, {"error_rate": 100}], ids=["503", "500"])
async def test_refusals_fail_over_at_once_without_a_lookup(
    payments: Sandbox, gateway: HttpPaymentGateway, knobs: dict
):
    await payments.set_faults("card-primary", **knobs)
    seen_before = sandbox_requests("card-primary")
    asked_before = sum(lookups("card-primary", s) for s in ChargeState)
    request = charge_request()
    result = await gateway.charge(request)
    assert result.status == PaymentStatus.APPROVED
    assert result.provider == "card-secondary"
    assert sandbox_requests("card-primary") == seen_before + 3  # the 3 charge attempts only
    assert sum(lookups("card-primary", s) for s in ChargeState) == asked_before
    await payments.admin.delete("/admin/faults/card-primary")
    assert await held_for(payments, "card-primary", request.idempotency_key) == []
    assert len(await held_for(payments, "card-secondary", request.idempotency_key)) == 1


async def test_connection_refused_is_an_error_not_unknown():
    # Nothing listens on this port: no request was ever sent, nothing can have charged.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = build_payment_gateway(fast_settings(payments_base_url=f"http://127.0.0.1:{port}"))
    asked_before = sum(lookups("card-primary", s) for s in ChargeState)
    try:
        result = await gateway.charge(charge_request())
    finally:
        await gateway.aclose()
    assert result.status == PaymentStatus.ERROR
    assert result.provider == "card-secondary"
    assert sum(lookups("card-primary", s) for s in ChargeState) == asked_before
