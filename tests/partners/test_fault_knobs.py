"""Every fault knob, turned at run time over the admin API, moves the metric meant to show it.

The sandboxes run as `python -m app.sandbox` runs them (AllSandboxes, one fault
board, the admin app beside), on free ports.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from partners_support import fast_settings, metric

from app.partners.couriers import CourierUnavailable, build_courier_gateway
from app.partners.interfaces import (
    ChargeRequest,
    MailMessage,
    Parcel,
    PaymentChannel,
    PaymentStatus,
)
from app.partners.mail import MailDeliveryError, SmtpMailTransport
from app.partners.payments import build_payment_gateway
from app.partners.settings import PartnersSettings
from app.sandbox.__main__ import AllSandboxes
from app.sandbox.settings import SandboxSettings


@dataclass
class Lab:
    urls: dict[str, str]
    admin: httpx.AsyncClient
    smtp_port: int

    async def turn(self, service: str, **knobs: object) -> None:
        response = await self.admin.put(f"/admin/faults/{service}", json=knobs)
        assert response.status_code == 200, response.text

    def partner_settings(self, **overrides: object) -> PartnersSettings:
        return fast_settings(
            payments_base_url=self.urls["payments"],
            couriers_base_url=self.urls["couriers"],
            payment_routes={"card": ["card-primary"], "wallet": ["wallet"]},
            breaker_failure_threshold=3,
            **overrides,
        )


@pytest.fixture()
async def lab() -> AsyncIterator[Lab]:
    settings = SandboxSettings(
        host="127.0.0.1",
        payments_port=0,
        couriers_port=0,
        smtp_port=0,
        admin_port=0,
        tracking_step_seconds=0,
    )
    sandboxes = AllSandboxes(settings)
    urls = await sandboxes.start()
    try:
        async with httpx.AsyncClient(base_url=urls["admin"]) as admin:
            yield Lab(urls, admin, int(urls["smtp"].rsplit(":", 1)[1]))
    finally:
        await sandboxes.stop()


def charge(channel: PaymentChannel = PaymentChannel.CARD) -> ChargeRequest:
    return ChargeRequest(
        idempotency_key=str(uuid.uuid4()),
        order_reference="ord-knob",
        amount_minor=1000,
        currency="EUR",
        channel=channel,
        payment_token="tok_visa",
        customer_reference="c",
    )


def sandbox_count(service: str, outcome: str) -> float:
    return metric("sandbox_requests_total", service=service, outcome=outcome)


def attempts(provider: str, outcome: str) -> float:
    return metric("shop_payment_attempts_total", channel="card", provider=provider, outcome=outcome)


@pytest.mark.parametrize(
    ("service", "knob", "value"),
    [
        ("card-primary", "latency_ms", 250),
        ("wallet", "error_rate", 37.5),
        ("crypto", "timeout_rate", 100),
        ("card-secondary", "outage", True),
        ("card-primary", "decline_rate", 10),
        ("globex", "error_rate", 50),
        ("swiftpost", "outage", True),
        ("smtp", "latency_ms", 100),
        ("smtp", "timeout_ms", 1500),
    ],
)
async def test_every_knob_is_exported_as_a_fault_setting(
    lab: Lab, service: str, knob: str, value: object
):
    await lab.turn(service, **{knob: value})
    assert metric("sandbox_fault_setting", service=service, knob=knob) == float(value)  # type: ignore[arg-type]
    await lab.admin.delete(f"/admin/faults/{service}")
    assert metric("sandbox_fault_setting", service=service, knob=knob) in (0.0, 30000.0)


async def test_knobs_refuse_bad_values_with_a_clear_error(lab: Lab):
    bad = [
        ("card-primary", {"error_rate": 101}),
        ("card-primary", {"latency_ms": -1}),
        ("card-primary", {"colour": "red"}),
        ("globex", {"decline_rate": 50}),  # only payment providers decline
    ]
    for service, body in bad:
        response = await lab.admin.put(f"/admin/faults/{service}", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["message"]
    assert (await lab.admin.put("/admin/faults/nobody", json={})).status_code == 404


# --- payments ---------------------------------------------------------------


async def test_latency_shows_in_the_payment_duration_histogram(lab: Lab):
    await lab.turn("card-primary", latency_ms=300)
    gateway = build_payment_gateway(lab.partner_settings(payment_timeout_seconds=5))
    labels = {"channel": "card", "provider": "card-primary"}
    fast_before = metric("shop_payment_duration_seconds_bucket", le="0.25", **labels)
    count_before = metric("shop_payment_duration_seconds_count", **labels)
    try:
        assert (await gateway.charge(charge())).status == PaymentStatus.APPROVED
    finally:
        await gateway.aclose()
    assert metric("shop_payment_duration_seconds_count", **labels) == count_before + 1
    assert metric("shop_payment_duration_seconds_bucket", le="0.25", **labels) == fast_before


async def test_error_rate_shows_as_errors_on_both_sides(lab: Lab):
    await lab.turn("card-primary", error_rate=100)
    sandbox_before, shop_before = (
        sandbox_count("card-primary", "error"),
        attempts("card-primary", "error"),
    )
    gateway = build_payment_gateway(lab.partner_settings())
    try:
        assert (await gateway.charge(charge())).status == PaymentStatus.ERROR
    finally:
        await gateway.aclose()
    assert sandbox_count("card-primary", "error") == sandbox_before + 3
    assert attempts("card-primary", "error") == shop_before + 3


async def test_timeout_rate_shows_as_timeouts_on_both_sides(lab: Lab):
    await lab.turn("card-primary", timeout_rate=100, timeout_ms=3000)
    sandbox_before = sandbox_count("card-primary", "timeout")
    shop_before = attempts("card-primary", "timeout")
    gateway = build_payment_gateway(lab.partner_settings(payment_timeout_seconds=0.2))
    try:
        # It may have charged and cannot be asked (its circuit is open by now): unknown.
        assert (await gateway.charge(charge())).status == PaymentStatus.UNKNOWN
    finally:
        await gateway.aclose()
    assert sandbox_count("card-primary", "timeout") == sandbox_before + 3
    assert attempts("card-primary", "timeout") == shop_before + 3


async def test_outage_opens_the_circuit_and_shows_in_its_gauge(lab: Lab):
    await lab.turn("wallet", outage=True)
    outage_before = sandbox_count("wallet", "outage")
    gateway = build_payment_gateway(lab.partner_settings())
    try:
        assert (await gateway.charge(charge(PaymentChannel.WALLET))).status == PaymentStatus.ERROR
    finally:
        await gateway.aclose()
    assert sandbox_count("wallet", "outage") == outage_before + 3
    assert metric("shop_payment_circuit_state", provider="wallet") == 2


async def test_decline_rate_shows_as_declines_on_both_sides(lab: Lab):
    await lab.turn("card-primary", decline_rate=100)
    sandbox_before = sandbox_count("card-primary", "declined")
    shop_before = attempts("card-primary", "declined")
    gateway = build_payment_gateway(lab.partner_settings())
    try:
        result = await gateway.charge(charge())
    finally:
        await gateway.aclose()
    assert result.status == PaymentStatus.DECLINED and result.reason == "do_not_honor"
    assert sandbox_count("card-primary", "declined") == sandbox_before + 1
    assert attempts("card-primary", "declined") == shop_before + 1


# --- couriers ---------------------------------------------------------------

PARCEL = Parcel(1000, "UA", "01001", 1000, "EUR")
ADDRESS = {"name": "A", "line1": "B", "city": "Kyiv", "postal_code": "01001", "country": "UA"}


def courier_requests(courier: str, operation: str, outcome: str) -> float:
    return metric(
        "shop_courier_requests_total", courier=courier, operation=operation, outcome=outcome
    )


@pytest.mark.parametrize(
    ("knobs", "outcome", "shop_outcome"),
    [
        ({"error_rate": 100}, "error", "error"),
        ({"outage": True}, "outage", "error"),
        ({"timeout_rate": 100, "timeout_ms": 3000}, "timeout", "timeout"),
    ],
)
async def test_courier_faults_fail_shipments_visibly(
    lab: Lab, knobs: dict, outcome: str, shop_outcome: str
):
    await lab.turn("globex", **knobs)
    sandbox_before = sandbox_count("globex", outcome)
    failed_before = metric("shop_shipments_total", courier="globex", state="failed")
    requests_before = courier_requests("globex", "shipment", shop_outcome)
    gateway = build_courier_gateway(lab.partner_settings(courier_timeout_seconds=0.2))
    try:
        with pytest.raises(CourierUnavailable):
            await gateway.create_shipment(
                option_id="globex:standard",
                parcel=PARCEL,
                order_reference=f"o-{uuid.uuid4().hex[:6]}",
                address=ADDRESS,
            )
    finally:
        await gateway.aclose()
    assert sandbox_count("globex", outcome) == sandbox_before + 3
    assert metric("shop_shipments_total", courier="globex", state="failed") == failed_before + 1
    assert courier_requests("globex", "shipment", shop_outcome) == requests_before + 3


async def test_courier_latency_is_exported_and_slows_answers(lab: Lab):
    await lab.turn("swiftpost", latency_ms=200)
    gateway = build_courier_gateway(lab.partner_settings(courier_timeout_seconds=0.1))
    try:
        quotes = await gateway.quote(PARCEL)  # swiftpost is too slow for this timeout
    finally:
        await gateway.aclose()
    assert {q.courier for q in quotes} == {"globex"}
    assert metric("sandbox_fault_setting", service="swiftpost", knob="latency_ms") == 200


# --- smtp -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("knobs", "outcome"),
    [
        ({"error_rate": 100}, "error"),
        ({"outage": True}, "outage"),
        ({"timeout_rate": 100, "timeout_ms": 2000}, "timeout"),
        ({"latency_ms": 1500}, None),  # slower than the sender's timeout: it gives up
    ],
)
async def test_smtp_faults_fail_mail_visibly(lab: Lab, knobs: dict, outcome: str | None):
    await lab.turn("smtp", **knobs)
    sandbox_before = sandbox_count("smtp", outcome) if outcome else None
    transport = SmtpMailTransport(
        host="127.0.0.1", port=lab.smtp_port, sender="orders@shop.example", timeout_seconds=0.5
    )
    with pytest.raises(MailDeliveryError) as failure:
        await transport.send(MailMessage(to="a@example.com", subject="s", body_text="b"))
    assert not failure.value.permanent  # temporary: the outbox will retry
    if outcome:
        assert sandbox_count("smtp", outcome) == sandbox_before + 1
    # The shop-side counter moves when the outbox worker sees the failure: test_mail.py.
    messages = (await lab.admin.get("/smtp/messages")).json()
    assert messages["total"] == 0
