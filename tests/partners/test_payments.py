"""The payment gateway against the payment sandbox, both real HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from partners_support import Sandbox, fast_settings, metric

from app.partners.interfaces import ChargeRequest, PaymentChannel, PaymentStatus
from app.partners.payments import HttpPaymentGateway, build_payment_gateway
from app.partners.settings import PartnersSettings


def charge_request(
    channel: PaymentChannel = PaymentChannel.CARD,
    token: str = "tok_visa",
    amount_minor: int = 4999,
    key: str | None = None,
) -> ChargeRequest:
    return ChargeRequest(
        idempotency_key=key or str(uuid.uuid4()),
        order_reference=f"ord-{uuid.uuid4().hex[:8]}",
        amount_minor=amount_minor,
        currency="EUR",
        channel=channel,
        payment_token=token,
        customer_reference="cust-1",
    )


def charges_at(sandbox: Sandbox, provider: str, order_reference: str | None = None) -> list:
    book = sandbox.app.state.books[provider]
    return [c for c in book.charges.values() if order_reference in (None, c.order_reference)]


@pytest.fixture()
async def gateway(payments: Sandbox) -> AsyncIterator[HttpPaymentGateway]:
    gw = build_payment_gateway(fast_settings(payments_base_url=payments.url))
    yield gw
    await gw.aclose()


async def make_gateway(payments: Sandbox, **overrides: object) -> HttpPaymentGateway:
    settings: PartnersSettings = fast_settings(payments_base_url=payments.url, **overrides)
    return build_payment_gateway(settings)


@pytest.mark.parametrize("channel", list(PaymentChannel))
async def test_each_channel_charges_at_its_provider(
    payments: Sandbox, gateway: HttpPaymentGateway, channel: PaymentChannel
):
    request = charge_request(channel)
    result = await gateway.charge(request)
    assert result.status == PaymentStatus.APPROVED
    expected_provider = {"card": "card-primary", "wallet": "wallet", "crypto": "crypto"}[channel]
    assert result.provider == expected_provider
    [stored] = charges_at(payments, expected_provider, request.order_reference)
    assert stored.id == result.provider_reference
    assert stored.amount_minor == 4999


async def test_duplicate_requests_fired_concurrently_charge_once(payments: Sandbox):
    # A generous timeout: this guards idempotency, and 20 concurrent requests on a
    # loaded 2-core CI machine can outlast the 0.5 s of fast_settings (a timeout is
    # its own test below).
    gateway = await make_gateway(payments, payment_timeout_seconds=10)
    request = charge_request()
    try:
        results = await asyncio.gather(*(gateway.charge(request) for _ in range(20)))
    finally:
        await gateway.aclose()
    assert {r.status for r in results} == {PaymentStatus.APPROVED}
    assert len({r.provider_reference for r in results}) == 1
    assert len(charges_at(payments, "card-primary", request.order_reference)) == 1


async def test_raw_duplicates_at_the_provider_replay_the_first_answer(payments: Sandbox):
    body = {
        "amount_minor": 1000,
        "currency": "EUR",
        "token": "tok_visa",
        "order_reference": "ord-raw",
        "customer_reference": "c",
    }
    headers = {"Idempotency-Key": "raw-key-1"}
    async with httpx.AsyncClient(base_url=payments.url) as client:
        answers = await asyncio.gather(
            *(
                client.post("/card-primary/v1/charges", json=body, headers=headers)
                for _ in range(10)
            )
        )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 9
    assert len(charges_at(payments, "card-primary", "ord-raw")) == 1


async def test_same_key_with_another_amount_is_refused_and_not_failed_over(
    payments: Sandbox, gateway: HttpPaymentGateway
):
    first = charge_request(key="key-reused")
    assert (await gateway.charge(first)).status == PaymentStatus.APPROVED
    changed = charge_request(key="key-reused", amount_minor=1)
    result = await gateway.charge(changed)
    assert result.status == PaymentStatus.ERROR
    assert result.reason == "idempotency_conflict"
    assert charges_at(payments, "card-secondary") == []


async def test_decline_token_is_final_and_not_failed_over(
    payments: Sandbox, gateway: HttpPaymentGateway
):
    before = metric(
        "shop_payment_attempts_total", channel="card", provider="card-primary", outcome="declined"
    )
    result = await gateway.charge(charge_request(token="tok_chargeDeclinedInsufficientFunds"))
    assert result.status == PaymentStatus.DECLINED
    assert result.reason == "insufficient_funds"
    assert charges_at(payments, "card-secondary") == []
    assert (
        metric(
            "shop_payment_attempts_total",
            channel="card",
            provider="card-primary",
            outcome="declined",
        )
        == before + 1
    )


async def test_card_number_is_refused_before_anything_is_sent(
    payments: Sandbox, gateway: HttpPaymentGateway, caplog: pytest.LogCaptureFixture
):
    caplog.set_level("DEBUG")
    result = await gateway.charge(charge_request(token="4242 4242 4242 4242"))
    assert result.status == PaymentStatus.DECLINED
    assert result.reason == "raw_card_data"
    assert charges_at(payments, "card-primary") == []
    assert "4242" not in caplog.text


async def test_outage_on_primary_card_provider_fails_over_to_secondary(
    payments: Sandbox, gateway: HttpPaymentGateway
):
    await payments.set_faults("card-primary", outage=True)
    outages_before = metric("sandbox_requests_total", service="card-primary", outcome="outage")
    request = charge_request()
    result = await gateway.charge(request)
    assert result.status == PaymentStatus.APPROVED
    assert result.provider == "card-secondary"
    assert charges_at(payments, "card-primary") == []
    assert len(charges_at(payments, "card-secondary", request.order_reference)) == 1
    # Every attempt at the primary was retried with backoff before failing over.
    assert metric("sandbox_requests_total", service="card-primary", outcome="outage") == (
        outages_before + 3
    )


async def test_wallet_has_no_secondary_so_its_outage_is_an_error(
    payments: Sandbox, gateway: HttpPaymentGateway
):
    await payments.set_faults("wallet", outage=True)
    result = await gateway.charge(charge_request(PaymentChannel.WALLET))
    assert result.status == PaymentStatus.ERROR
    assert result.provider == "wallet"


async def test_timeouts_are_retried_then_unknown_and_not_failed_over(
    payments: Sandbox, gateway: HttpPaymentGateway
):
    # A timeout may hide a charge; the hanging provider cannot be asked either, so the
    # outcome is unknown and the secondary is not charged (test_payment_ambiguity.py).
    await payments.set_faults("card-primary", timeout_rate=100, timeout_ms=5000)
    labels = {"channel": "card", "provider": "card-primary"}
    before = metric("shop_payment_attempts_total", outcome="timeout", **labels)
    unknown_before = metric("shop_payment_attempts_total", outcome="unknown", **labels)
    result = await gateway.charge(charge_request())
    assert result.status == PaymentStatus.UNKNOWN
    assert result.provider == "card-primary"
    assert charges_at(payments, "card-secondary") == []
    after = metric("shop_payment_attempts_total", outcome="timeout", **labels)
    assert after == before + 3
    assert metric("shop_payment_attempts_total", outcome="unknown", **labels) == unknown_before + 1


async def test_all_providers_down_errors_and_the_open_breaker_stops_calling(payments: Sandbox):
    gateway = await make_gateway(payments, breaker_failure_threshold=3)
    try:
        await payments.set_faults("card-primary", outage=True)
        await payments.set_faults("card-secondary", outage=True)
        first = await gateway.charge(charge_request())
        assert first.status == PaymentStatus.ERROR
        for provider in ("card-primary", "card-secondary"):
            assert metric("shop_payment_circuit_state", provider=provider) == 2

        seen_before = {
            p: metric("sandbox_requests_total", service=p, outcome="outage")
            for p in ("card-primary", "card-secondary")
        }
        second = await gateway.charge(charge_request())
        assert second.status == PaymentStatus.ERROR
        assert second.reason == "circuit_open"
        for provider, count in seen_before.items():
            assert metric("sandbox_requests_total", service=provider, outcome="outage") == count
    finally:
        await gateway.aclose()


async def test_breaker_half_opens_after_its_reset_time_and_closes_on_success(payments: Sandbox):
    gateway = await make_gateway(payments, breaker_failure_threshold=2, breaker_reset_seconds=0.2)
    try:
        await payments.set_faults("wallet", outage=True)
        await gateway.charge(charge_request(PaymentChannel.WALLET))
        assert metric("shop_payment_circuit_state", provider="wallet") == 2
        await payments.set_faults("wallet", outage=False)
        await asyncio.sleep(0.3)
        result = await gateway.charge(charge_request(PaymentChannel.WALLET))
        assert result.status == PaymentStatus.APPROVED
        assert metric("shop_payment_circuit_state", provider="wallet") == 0
    finally:
        await gateway.aclose()


async def test_refund_full_then_nothing_left_and_replay_is_safe(
    payments: Sandbox, gateway: HttpPaymentGateway
):
    charged = await gateway.charge(charge_request(amount_minor=2500))
    assert charged.provider_reference is not None
    refund = await gateway.refund(
        provider=charged.provider,
        provider_reference=charged.provider_reference,
        amount_minor=2500,
        currency="EUR",
        idempotency_key="refund-1",
    )
    assert refund.succeeded
    replay = await gateway.refund(
        provider=charged.provider,
        provider_reference=charged.provider_reference,
        amount_minor=2500,
        currency="EUR",
        idempotency_key="refund-1",
    )
    assert replay.succeeded and replay.provider_reference == refund.provider_reference
    again = await gateway.refund(
        provider=charged.provider,
        provider_reference=charged.provider_reference,
        amount_minor=1,
        currency="EUR",
        idempotency_key="refund-2",
    )
    assert not again.succeeded
    assert "exceeds" in (again.reason or "")
    [stored] = charges_at(payments, charged.provider)
    assert stored.refunded_minor == 2500


GOOD_CHARGE = {
    "amount_minor": 1,
    "currency": "EUR",
    "token": "tok_visa",
    "order_reference": "o",
    "customer_reference": "c",
}
KEY = {"Idempotency-Key": "k"}


@pytest.mark.parametrize(
    ("path", "body", "headers", "status"),
    [
        ("/card-primary/v1/charges", GOOD_CHARGE, {}, 422),  # no idempotency key
        ("/card-primary/v1/charges", {**GOOD_CHARGE, "currency": "euro"}, KEY, 422),
        ("/card-primary/v1/charges", {**GOOD_CHARGE, "amount_minor": -5}, KEY, 422),
        ("/card-primary/v1/charges", {**GOOD_CHARGE, "token": "4111111111111111"}, KEY, 422),
        ("/card-primary/v1/charges", {**GOOD_CHARGE, "extra": 1}, KEY, 422),
        ("/nobody/v1/charges", GOOD_CHARGE, KEY, 404),
        ("/card-primary/v1/refunds", {"charge_id": "ch_missing"}, KEY, 404),
    ],
)
async def test_sandbox_refuses_bad_requests_with_a_clear_error(
    payments: Sandbox, path: str, body: dict, headers: dict, status: int
):
    async with httpx.AsyncClient(base_url=payments.url) as client:
        response = await client.post(path, json=body, headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["message"]
    assert charges_at(payments, "card-primary") == []
