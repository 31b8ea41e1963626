"""Orders: the state machine, refunds and restocking, payment outcomes, idempotency, RBAC."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.app.client import ShopClient


async def _paid_order(client: ShopClient, admin: str, stock: int = 5) -> tuple[str, str, dict]:
    sku = await client.create_product(admin, stock={"WH-KYIV": stock})
    token = await client.customer()
    await client.add_to_cart(token, sku, 1)
    placed = await client.checkout(token)
    assert placed.status_code == 201, placed.text
    return token, sku, placed.json()


async def _move(client: ShopClient, admin: str, order_id: int, to: str) -> httpx.Response:
    return await client.http.post(
        f"/api/admin/orders/{order_id}/transition", json={"to": to}, headers=client.auth(admin)
    )


async def test_order_walks_the_happy_path_and_gets_tracking(client: ShopClient) -> None:
    admin = await client.admin()
    token, _, order = await _paid_order(client, admin)
    for state in ("packed", "shipped", "delivered"):
        moved = await _move(client, admin, order["id"], state)
        assert moved.status_code == 200, moved.text
        assert moved.json()["status"] == state
    tracking = (
        await client.http.get(f"/api/orders/{order['id']}/tracking", headers=client.auth(token))
    ).json()
    assert tracking["status"] == "delivered"
    # Packing bought the label at the courier sandbox: its first event is in the history.
    assert tracking["tracking_number"] and tracking["courier"] == "globex"
    assert [e["status"] for e in tracking["events"]] == [
        "pending_payment",
        "paid",
        "label_created",
        "packed",
        "shipped",
        "delivered",
    ]


@pytest.mark.parametrize(
    ("path", "to"),
    [
        ((), "delivered"),
        ((), "pending_payment"),
        (("packed", "shipped"), "cancelled"),
        (("cancelled",), "paid"),
    ],
)
async def test_illegal_transition_is_409_with_a_clear_message(
    client: ShopClient, path: tuple[str, ...], to: str
) -> None:
    admin = await client.admin()
    _, _, order = await _paid_order(client, admin)
    for state in path:
        assert (await _move(client, admin, order["id"], state)).status_code == 200
    refused = await _move(client, admin, order["id"], to)
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "illegal_transition"
    current = path[-1] if path else "paid"
    assert f"is {current}" in error["message"] and f"cannot become {to}" in error["message"]
    order_now = await client.http.get("/api/admin/orders?page_size=100", headers=client.auth(admin))
    assert next(o for o in order_now.json()["items"] if o["id"] == order["id"])["status"] == current


async def test_customer_cannot_cancel_a_packed_order(client: ShopClient) -> None:
    admin = await client.admin()
    token, _, order = await _paid_order(client, admin)
    await _move(client, admin, order["id"], "packed")
    refused = await client.http.post(
        f"/api/orders/{order['id']}/cancel", headers=client.auth(token)
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "illegal_transition"


async def test_refund_of_a_paid_order_returns_stock_and_is_recorded(client: ShopClient) -> None:
    admin = await client.admin()
    _, sku, order = await _paid_order(client, admin, stock=3)
    assert (await client.product(sku))["total_stock"] == 2
    refunded = await _move(client, admin, order["id"], "refunded")
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["events"][-1]["note"].startswith("refunded")
    assert (await client.product(sku))["total_stock"] == 3


async def test_a_customer_sees_only_own_orders(client: ShopClient) -> None:
    admin = await client.admin()
    _, _, order = await _paid_order(client, admin)
    stranger = await client.customer()
    for path in (f"/api/orders/{order['id']}", f"/api/orders/{order['id']}/tracking"):
        assert (await client.http.get(path, headers=client.auth(stranger))).status_code == 404
    cancel = await client.http.post(
        f"/api/orders/{order['id']}/cancel", headers=client.auth(stranger)
    )
    assert cancel.status_code == 404


async def test_declined_payment_cancels_the_order_restocks_and_keeps_the_cart(
    client: ShopClient,
) -> None:
    admin = await client.admin()
    sku = await client.create_product(admin, stock={"WH-KYIV": 1})
    token = await client.customer()
    await client.add_to_cart(token, sku, 1)
    declined = await client.checkout(token, payment_token="tok_chargeDeclinedInsufficientFunds")
    assert declined.status_code == 402, declined.text
    error = declined.json()["error"]
    assert error["reason"] == "payment_declined" and "insufficient_funds" in error["message"]
    assert (await client.product(sku))["total_stock"] == 1
    cart = (await client.http.get("/api/cart", headers=client.auth(token))).json()
    assert [i["sku"] for i in cart["items"]] == [sku]
    order = (
        await client.http.get(f"/api/orders/{error['order_id']}", headers=client.auth(token))
    ).json()
    assert order["status"] == "cancelled"
    # a second try with a good card goes through
    assert (await client.checkout(token)).status_code == 201


async def test_checkout_retry_with_the_same_idempotency_key_returns_the_same_order(
    client: ShopClient,
) -> None:
    admin = await client.admin()
    sku = await client.create_product(admin, stock={"WH-KYIV": 5})
    token = await client.customer()
    await client.add_to_cart(token, sku, 1)
    first, second = await asyncio.gather(
        client.checkout(token, key="retry-key-0001"), client.checkout(token, key="retry-key-0001")
    )
    assert sorted([first.status_code, second.status_code]) in ([200, 201], [201, 201]) or {
        first.status_code,
        second.status_code,
    } <= {200, 201}, (first.text, second.text)
    assert first.json()["id"] == second.json()["id"]
    again = await client.checkout(token, key="retry-key-0001")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert (await client.product(sku))["total_stock"] == 4
    history = (await client.http.get("/api/orders", headers=client.auth(token))).json()
    assert history["total"] == 1


ADMIN_CALLS = [
    ("GET", "/api/admin/products", None),
    ("POST", "/api/admin/products", {"sku": "X-1"}),
    ("PATCH", "/api/admin/products/SKU-000001", {"price": 1}),
    ("PUT", "/api/admin/products/SKU-000001/stock", {"warehouse": "WH-KYIV", "quantity": 1}),
    ("GET", "/api/admin/orders", None),
    ("POST", "/api/admin/orders/1/transition", {"to": "paid"}),
    ("GET", "/api/admin/users", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
async def test_admin_routes_refuse_customers_with_403_and_strangers_with_401(
    client: ShopClient, method: str, path: str, body: dict | None
) -> None:
    customer = await client.customer()
    as_customer = await client.http.request(method, path, json=body, headers=client.auth(customer))
    assert as_customer.status_code == 403, as_customer.text
    assert as_customer.json()["error"]["code"] == "forbidden"
    anonymous = await client.http.request(method, path, json=body)
    assert anonymous.status_code == 401


async def test_admin_price_change_is_served_at_once(client: ShopClient) -> None:
    admin = await client.admin()
    sku = await client.create_product(admin, stock={"WH-KYIV": 1}, price=1000)
    assert (await client.product(sku))["price"]["amount"] == 1000  # now cached
    changed = await client.http.patch(
        f"/api/admin/products/{sku}", json={"price": 1250}, headers=client.auth(admin)
    )
    assert changed.status_code == 200 and changed.json()["price"]["amount"] == 1250
    users = await client.http.get(
        "/api/admin/users", params={"email": client.shop.admin_email}, headers=client.auth(admin)
    )
    assert users.json()["items"][0]["role"] == "admin"
