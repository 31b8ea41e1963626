"""The shop wired to its partners, end to end: real sandboxes, the real shop under gunicorn.

`python -m app.sandbox` runs as a process (payments, couriers, SMTP sink, admin)
whose webhooks point at the shop; the shop is served by its production command
(`python -m app.serve`, two workers) on SQLite and on PostgreSQL. Nothing is
mocked: quotes, labels and tracking come from the courier sandbox, payments
from the payment sandbox, mail goes through the outbox worker to the SMTP sink,
and tracking moves orders both by pull and by signed push.

The shop's risk engine runs with two rules sharpened so that tests can steer
it: a billing country unlike the shipping country scores 50 (challenge) and
an order of 1000.00 or more from a new account scores 90 (block).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pyotp
import pytest

from app.partners.webhooks import SIGNATURE_HEADER, sign
from tests.app.client import ADDRESS, ShopClient
from tests.conftest import (
    PartnerSandboxes,
    ShopServer,
    database_for,
    start_partner_sandboxes,
)

BLOCK_FROM_MINOR = 100_000  # a new account's order of 1000.00 or more is blocked
FRAUD_ENV = {
    "PARTNERS_FRAUD__COUNTRY_MISMATCH_POINTS": "50",
    "PARTNERS_FRAUD__LARGE_ORDER_MINOR": str(BLOCK_FROM_MINOR),
    "PARTNERS_FRAUD__NEW_ACCOUNT_LARGE_ORDER_POINTS": "90",
}
PASSWORD = "correct horse battery"


@dataclass
class Stack:
    shop: ShopServer
    sandboxes: PartnerSandboxes


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(
    request: pytest.FixtureRequest,
    module_shop_factory: Callable[..., ShopServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    sandboxes = start_partner_sandboxes()
    try:
        database_url = database_for(request.param, request, tmp_path_factory.mktemp("journey"))
        shop = module_shop_factory(
            database_url,
            payments_url=sandboxes.payments_url,
            extra_env={**sandboxes.shop_env(), **FRAUD_ENV},
        )
        for url, path in (
            (sandboxes.couriers_url, "/api/webhooks/couriers"),
            (sandboxes.payments_url, "/api/webhooks/payments"),
        ):
            target = httpx.put(f"{url}/admin/webhooks", json={"url": f"{shop.url}{path}"})
            assert target.status_code == 200, target.text
        yield Stack(shop, sandboxes)
    finally:
        sandboxes.stop()


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[ShopClient]:
    async with httpx.AsyncClient(base_url=stack.shop.url, timeout=30) as http:
        yield ShopClient(http, stack.shop)


@pytest.fixture
async def partners(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the sandboxes (absolute URLs)."""
    async with httpx.AsyncClient(timeout=30) as http:
        yield http


async def eventually(
    probe: Callable[[], Awaitable[Any]], what: str, within_seconds: float = 30
) -> Any:
    deadline = time.monotonic() + within_seconds
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def mails_to(partners: httpx.AsyncClient, stack: Stack, email: str) -> list[dict[str, Any]]:
    listing = await partners.get(f"{stack.sandboxes.admin_url}/smtp/messages", params={"to": email})
    assert listing.status_code == 200, listing.text
    return listing.json()["items"]


async def mail_body(partners: httpx.AsyncClient, stack: Stack, message_id: int) -> str:
    message = await partners.get(f"{stack.sandboxes.admin_url}/smtp/messages/{message_id}")
    assert message.status_code == 200, message.text
    return message.json()["body_text"]


async def enrolled_customer(client: ShopClient) -> tuple[str, str, pyotp.TOTP]:
    """(email, access token, TOTP) of a new customer with TOTP enrolled (current code used)."""
    email = await client.register()
    token = await client.login(email)
    enrol = await client.start_totp(token, PASSWORD)
    assert enrol.status_code == 200, enrol.text
    totp = pyotp.TOTP(enrol.json()["secret"])
    verified = await client.http.post(
        "/api/account/mfa/totp/verify", json={"code": totp.now()}, headers=client.auth(token)
    )
    assert verified.status_code == 200, verified.text
    return email, token, totp


def next_code(totp: pyotp.TOTP) -> str:
    """A code the shop accepts that was not used yet (the current one went to enrolment)."""
    return totp.at(time.time() + totp.interval)


async def admin_move(client: ShopClient, order_id: int, to: str) -> httpx.Response:
    return await client.http.post(
        f"/api/admin/orders/{order_id}/transition",
        json={"to": to},
        headers=client.auth(await client.admin()),
    )


async def order_status(client: ShopClient, token: str, order_id: int) -> str:
    order = await client.http.get(f"/api/orders/{order_id}", headers=client.auth(token))
    assert order.status_code == 200, order.text
    return order.json()["status"]


async def my_orders(client: ShopClient, token: str) -> list[dict[str, Any]]:
    return (await client.http.get("/api/orders", headers=client.auth(token))).json()["items"]


# --- the journey --------------------------------------------------------------------------


async def test_customer_journey_through_every_partner(
    client: ShopClient, partners: httpx.AsyncClient, stack: Stack
) -> None:
    http = client.http
    couriers = stack.sandboxes.couriers_url

    # register -> enrol TOTP -> log in with password and TOTP
    email, _, totp = await enrolled_customer(client)
    step1 = await http.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert step1.status_code == 200 and step1.json()["mfa_required"] is True
    step2 = await http.post(
        "/api/auth/login/mfa",
        json={"mfa_token": step1.json()["mfa_token"], "code": next_code(totp)},
    )
    assert step2.status_code == 200, step2.text
    token = step2.json()["access_token"]

    # search -> cart
    found = await http.get("/api/products", params={"q": "honey", "page_size": 50})
    assert found.status_code == 200, found.text
    item = next(
        i
        for i in found.json()["items"]
        if i["in_stock"] and i["price"]["amount"] < BLOCK_FROM_MINOR // 2
    )
    stock_before = (await client.product(item["sku"]))["total_stock"]
    assert (await client.add_to_cart(token, item["sku"], 1)).status_code == 200

    # quote: the options are the courier sandbox's, cheapest first
    quote = await http.post(
        "/api/checkout/quote",
        json={"country": ADDRESS["country"], "postal_code": ADDRESS["postal_code"]},
        headers=client.auth(token),
    )
    assert quote.status_code == 200, quote.text
    options = quote.json()["options"]
    assert {o["courier"] for o in options} == {"swiftpost", "globex"}
    prices = [o["price"]["amount"] for o in options]
    assert prices == sorted(prices)
    option = options[0]

    # checkout: risk allows, the payment sandbox charges, the order is paid
    placed = await client.checkout(token, shipping_option=option["id"])
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["status"] == "paid"
    assert order["payment_provider"] == "card-primary"
    assert order["total"]["amount"] == item["price"]["amount"] + option["price"]["amount"]
    assert "risk allow" in order["events"][0]["note"]
    charges = await partners.get(
        f"{stack.sandboxes.payments_url}/card-primary/v1/charges",
        params={"order_reference": order["reference"]},
    )
    assert [c["status"] for c in charges.json()["items"]] == ["succeeded"]
    assert (await client.product(item["sku"]))["total_stock"] == stock_before - 1

    # the confirmation mail reaches the SMTP sink (outbox -> worker -> SMTP)
    confirmation = (
        await eventually(lambda: mails_to(partners, stack, email), "the confirmation mail")
    )[0]
    assert order["reference"] in confirmation["subject"]
    assert "confirmed" in confirmation["subject"]
    assert item["sku"] in await mail_body(partners, stack, confirmation["id"])

    # the admin packs: the label is bought at the courier, with the customs declaration
    packed = await admin_move(client, order["id"], "packed")
    assert packed.status_code == 200, packed.text
    courier, tracking_number = packed.json()["courier"], packed.json()["tracking_number"]
    assert option["id"] == f"{courier}:{option['service']}" and tracking_number
    shipment = (await partners.get(f"{couriers}/{courier}/v1/shipments/{tracking_number}")).json()
    assert shipment["order_reference"] == order["reference"]
    customs = shipment["customs"]
    assert customs["currency"] == "EUR"
    assert customs["declared_value_minor"] == order["subtotal"]["amount"]
    assert [(i["hs_code"], i["quantity"]) for i in customs["items"]] == [
        (order["lines"][0]["hs_code"], 1)
    ]
    assert all(i["origin_country"] for i in customs["items"])

    # the courier picks the parcel up: its signed webhook makes the order shipped (push)
    advanced = await partners.post(f"{couriers}/admin/shipments/{tracking_number}/advance")
    assert advanced.json()["status"] == "picked_up"

    async def shipped() -> bool:
        return await order_status(client, token, order["id"]) == "shipped"

    await eventually(shipped, "the pushed picked_up event to ship the order")

    # the rest of the way; the customer's tracking shows the courier's events and the
    # order is delivered
    while advanced.json()["status"] != "delivered":
        advanced = await partners.post(f"{couriers}/admin/shipments/{tracking_number}/advance")
        assert advanced.status_code == 200, advanced.text
    tracking = await http.get(f"/api/orders/{order['id']}/tracking", headers=client.auth(token))
    assert tracking.status_code == 200, tracking.text
    statuses = [e["status"] for e in tracking.json()["events"]]
    for status in ("label_created", "picked_up", "in_transit", "customs_cleared", "delivered"):
        assert status in statuses, statuses
    assert tracking.json()["status"] == "delivered"
    history = [(e["to_status"], e["actor"]) for e in (await my_order(client, token, order))]
    assert history[-2:] == [("shipped", "courier"), ("delivered", "courier")]

    # the shipping mail
    async def shipping_mail() -> list[dict[str, Any]]:
        return [m for m in await mails_to(partners, stack, email) if "shipped" in m["subject"]]

    notice = (await eventually(shipping_mail, "the shipping mail"))[0]
    assert tracking_number in await mail_body(partners, stack, notice["id"])
    assert len(await mails_to(partners, stack, email)) == 2  # each mail exactly once

    # every decision was counted once per checkout; mail and shipments in the metrics
    metrics = (await http.get("/metrics")).text
    assert 'shop_fraud_decisions_total{decision="allow"}' in metrics
    assert "shop_mail_sent_total" in metrics
    assert f'shop_shipments_total{{courier="{courier}",state="created"}}' in metrics


async def my_order(client: ShopClient, token: str, order: dict[str, Any]) -> list[dict[str, Any]]:
    answer = await client.http.get(f"/api/orders/{order['id']}", headers=client.auth(token))
    assert answer.status_code == 200, answer.text
    return answer.json()["events"]


async def test_tracking_moves_the_order_by_pull_when_no_webhook_arrives(
    client: ShopClient, partners: httpx.AsyncClient, stack: Stack
) -> None:
    couriers = stack.sandboxes.couriers_url
    admin = await client.admin()
    sku = await client.create_product(admin, stock={"WH-KYIV": 2})
    token = await client.customer()
    await client.add_to_cart(token, sku, 1)
    placed = await client.checkout(token)
    assert placed.status_code == 201, placed.text
    order = placed.json()
    packed = await admin_move(client, order["id"], "packed")
    assert packed.status_code == 200, packed.text
    tracking_number = packed.json()["tracking_number"]
    webhooks = (await partners.get(f"{couriers}/admin/webhooks")).json()["url"]
    await partners.put(f"{couriers}/admin/webhooks", json={"url": None})
    try:
        for _ in range(2):  # picked_up, in_transit: never pushed
            assert (
                await partners.post(f"{couriers}/admin/shipments/{tracking_number}/advance")
            ).status_code == 200
        assert await order_status(client, token, order["id"]) == "packed"
        tracking = await client.http.get(
            f"/api/orders/{order['id']}/tracking", headers=client.auth(token)
        )
        assert tracking.status_code == 200, tracking.text
        assert tracking.json()["status"] == "shipped"
        assert "in_transit" in [e["status"] for e in tracking.json()["events"]]
        assert await order_status(client, token, order["id"]) == "shipped"
    finally:
        await partners.put(f"{couriers}/admin/webhooks", json={"url": webhooks})


# --- fraud through the HTTP API -----------------------------------------------------------


async def test_blocked_checkout_is_403_and_places_nothing(client: ShopClient) -> None:
    admin = await client.admin()
    sku = await client.create_product(admin, stock={"WH-KYIV": 3}, price=BLOCK_FROM_MINOR + 1)
    token = await client.customer()
    await client.add_to_cart(token, sku, 1)
    refused = await client.checkout(token)
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "forbidden" and error["reason"] == "fraud_blocked"
    assert await my_orders(client, token) == []
    assert (await client.product(sku))["total_stock"] == 3
    cart = (await client.http.get("/api/cart", headers=client.auth(token))).json()
    assert [i["sku"] for i in cart["items"]] == [sku]  # kept: nothing was written
    metrics = (await client.http.get("/metrics")).text
    assert 'shop_fraud_decisions_total{decision="block"}' in metrics


async def test_challenged_checkout_needs_the_customers_totp_code(client: ShopClient) -> None:
    admin = await client.admin()
    sku = await client.create_product(admin, stock={"WH-KYIV": 3})
    _, token, totp = await enrolled_customer(client)
    await client.add_to_cart(token, sku, 1)
    key = secrets.token_hex(12)

    without = await client.checkout(token, key=key, billing_country="PL")
    assert without.status_code == 403, without.text
    assert without.json()["error"]["code"] == "step_up_required"
    assert "totp_code" in without.json()["error"]["message"]
    assert await my_orders(client, token) == []
    assert (await client.product(sku))["total_stock"] == 3

    good = next_code(totp)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    refused = await client.checkout(token, key=key, billing_country="PL", totp_code=wrong)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "step_up_failed"
    assert await my_orders(client, token) == []

    passed = await client.checkout(token, key=key, billing_country="PL", totp_code=good)
    assert passed.status_code == 201, passed.text
    assert passed.json()["status"] == "paid"
    assert "risk challenge" in passed.json()["events"][0]["note"]
    assert (await client.product(sku))["total_stock"] == 2

    # the same code does not pass a second challenge
    await client.add_to_cart(token, sku, 1)
    replayed = await client.checkout(token, billing_country="PL", totp_code=good)
    assert replayed.status_code == 403 and replayed.json()["error"]["code"] == "step_up_failed"
    metrics = (await client.http.get("/metrics")).text
    assert 'shop_fraud_decisions_total{decision="challenge"}' in metrics
    assert 'shop_checkout_failures_total{reason="fraud_challenged"}' in metrics


async def test_challenged_customer_without_totp_is_refused(client: ShopClient) -> None:
    admin = await client.admin()
    sku = await client.create_product(admin, stock={"WH-KYIV": 1})
    token = await client.customer()
    await client.add_to_cart(token, sku, 1)
    refused = await client.checkout(token, billing_country="PL", totp_code="123456")
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "step_up_unavailable"
    assert await my_orders(client, token) == []
    assert (await client.product(sku))["total_stock"] == 1


# --- webhooks: only signed deliveries change anything --------------------------------------


async def test_forged_courier_webhook_is_401_and_changes_nothing(
    client: ShopClient, stack: Stack
) -> None:
    admin = await client.admin()
    sku = await client.create_product(admin, stock={"WH-KYIV": 1})
    token = await client.customer()
    await client.add_to_cart(token, sku, 1)
    order = (await client.checkout(token)).json()
    packed = (await admin_move(client, order["id"], "packed")).json()
    event = {
        "id": "evt_forged",
        "type": "tracking.updated",
        "created": int(time.time()),
        "data": {
            "courier": packed["courier"],
            "tracking_number": packed["tracking_number"],
            "order_reference": order["reference"],
            "event": {
                "status": "delivered",
                "occurred_at": "2026-01-01T00:00:00+00:00",
                "location": "",
                "description": "Delivered",
            },
        },
    }
    body = json.dumps(event).encode()
    for headers in (
        {},  # unsigned
        {SIGNATURE_HEADER: sign(body, "not-the-shared-secret")},  # forged
        {SIGNATURE_HEADER: sign(body, stack.sandboxes.couriers_webhook_secret, timestamp=1)},
    ):
        answer = await client.http.post(
            "/api/webhooks/couriers",
            content=body,
            headers={"Content-Type": "application/json", **headers},
        )
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["code"] == "unauthorized"
    tampered = await client.http.post(
        "/api/webhooks/couriers",
        content=body.replace(b"delivered", b"out_for_delivery", 1),
        headers={SIGNATURE_HEADER: sign(body, stack.sandboxes.couriers_webhook_secret)},
    )
    assert tampered.status_code == 401
    assert await order_status(client, token, order["id"]) == "packed"

    # the same event, signed with the shared secret, is applied
    genuine = await client.http.post(
        "/api/webhooks/couriers",
        content=body,
        headers={SIGNATURE_HEADER: sign(body, stack.sandboxes.couriers_webhook_secret)},
    )
    assert genuine.status_code == 200 and genuine.json() == {"status": "applied"}
    assert await order_status(client, token, order["id"]) == "delivered"


async def test_forged_payment_webhook_is_401(client: ShopClient, stack: Stack) -> None:
    body = json.dumps({"type": "charge.failed", "data": {"order_reference": "SO-X"}}).encode()
    answer = await client.http.post(
        "/api/webhooks/payments",
        content=body,
        headers={SIGNATURE_HEADER: sign(body, "guessed")},
    )
    assert answer.status_code == 401


async def test_payment_webhooks_reached_the_shop_signed(
    partners: httpx.AsyncClient, stack: Stack
) -> None:
    """The sandbox delivered charge.succeeded for every paid order, and the shop took them."""
    deliveries = (await partners.get(f"{stack.sandboxes.payments_url}/admin/webhooks")).json()[
        "deliveries"
    ]
    assert deliveries, "no payment webhook was sent"

    async def all_delivered() -> bool:
        listing = (await partners.get(f"{stack.sandboxes.payments_url}/admin/webhooks")).json()
        return all(d["delivered"] for d in listing["deliveries"])

    await eventually(all_delivered, "every payment webhook to be accepted")
    # The webhook and the checkout's own answer settled each order once: no charge was
    # taken for a duplicate (and so refunded).
    charges = (
        await partners.get(f"{stack.sandboxes.payments_url}/card-primary/v1/charges")
    ).json()["items"]
    assert charges and all(c["refunded_minor"] == 0 for c in charges), charges
