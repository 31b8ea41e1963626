"""Stock is never oversold: N concurrent checkouts for the last unit place exactly one order."""

from __future__ import annotations

import asyncio

from tests.app.client import ShopClient

CONCURRENT_BUYERS = 12


async def test_concurrent_checkouts_for_the_last_unit_sell_it_once(client: ShopClient) -> None:
    admin = await client.admin()
    sku = await client.create_product(admin, stock={"WH-LVIV": 1})
    buyers = await asyncio.gather(*(client.customer() for _ in range(CONCURRENT_BUYERS)))
    for token in buyers:  # every cart holds the unit: the cart check sees 1 in stock for all
        assert (await client.add_to_cart(token, sku)).status_code == 200

    results = await asyncio.gather(*(client.checkout(token) for token in buyers))

    statuses = sorted(r.status_code for r in results)
    assert statuses.count(201) == 1, [r.text for r in results]
    assert statuses.count(409) == CONCURRENT_BUYERS - 1, [
        r.text for r in results if r.status_code != 409
    ]
    refused = [r.json()["error"] for r in results if r.status_code == 409]
    assert {e["code"] for e in refused} == {"out_of_stock"}
    product = await client.product(sku)
    assert product["total_stock"] == 0
    assert [s["quantity"] for s in product["stock"]] == [0]
    admin_orders = await client.http.get(
        "/api/admin/orders", params={"page_size": 100}, headers=client.auth(admin)
    )
    paid_for_sku = [o for o in admin_orders.json()["items"] if o["lines"][0]["sku"] == sku]
    assert len(paid_for_sku) == 1 and paid_for_sku[0]["status"] == "paid"


async def test_stock_spread_over_warehouses_is_taken_across_them(client: ShopClient) -> None:
    admin = await client.admin()
    sku = await client.create_product(admin, stock={"WH-KYIV": 1, "WH-LVIV": 2, "WH-WAW": 1})
    token = await client.customer()
    assert (await client.add_to_cart(token, sku, 4)).status_code == 200
    placed = await client.checkout(token)
    assert placed.status_code == 201, placed.text
    assert (await client.product(sku))["total_stock"] == 0
    # the next buyer is refused and nothing goes negative
    other = await client.customer()
    assert (await client.add_to_cart(other, sku, 1)).status_code == 409


async def test_cancelled_order_returns_units_to_their_warehouses(client: ShopClient) -> None:
    admin = await client.admin()
    sku = await client.create_product(admin, stock={"WH-KYIV": 1, "WH-WAW": 2})
    token = await client.customer()
    await client.add_to_cart(token, sku, 3)
    order = (await client.checkout(token)).json()
    cancelled = await client.http.post(
        f"/api/orders/{order['id']}/cancel", headers=client.auth(token)
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    stock = {s["warehouse"]: s["quantity"] for s in (await client.product(sku))["stock"]}
    assert stock == {"WH-KYIV": 1, "WH-WAW": 2}
