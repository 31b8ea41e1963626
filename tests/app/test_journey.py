"""The customer journey over HTTP against the served shop, then its metrics."""

from __future__ import annotations

import time

import pyotp
from prometheus_client.parser import text_string_to_metric_families

from tests.app.client import ADDRESS, ShopClient, unique_email


def samples(metrics_text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics_text)
        for s in family.samples
    }


def total(
    scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    wanted = set(labels.items())
    return sum(v for (n, lbl), v in scraped.items() if n == name and wanted <= set(lbl))


async def test_customer_journey_with_totp_ends_in_paid_order_and_metrics(
    client: ShopClient,
) -> None:
    http = client.http
    before = samples((await http.get("/metrics")).text)

    # register
    email, password = unique_email("journey"), "a long journey password"
    assert (
        await http.post(
            "/api/auth/register",
            json={"email": email, "password": password, "full_name": "Journey"},
        )
    ).status_code == 201
    token = (
        await http.post("/api/auth/login", json={"email": email, "password": password})
    ).json()["access_token"]

    # enrol TOTP
    enrol = await http.post(
        "/api/account/mfa/totp", json={"password": password}, headers=client.auth(token)
    )
    assert enrol.status_code == 200, enrol.text
    totp = pyotp.TOTP(enrol.json()["secret"])
    assert enrol.json()["otpauth_uri"].startswith("otpauth://totp/")
    verified = await http.post(
        "/api/account/mfa/totp/verify", json={"code": totp.now()}, headers=client.auth(token)
    )
    assert verified.status_code == 200, verified.text

    # log in again: password, then TOTP (the next step's code: the current one was just used)
    step1 = await http.post("/api/auth/login", json={"email": email, "password": password})
    assert step1.status_code == 200 and step1.json()["mfa_required"] is True
    assert "access_token" not in step1.json()
    code = totp.at(time.time() + totp.interval)
    step2 = await http.post(
        "/api/auth/login/mfa", json={"mfa_token": step1.json()["mfa_token"], "code": code}
    )
    assert step2.status_code == 200, step2.text
    token = step2.json()["access_token"]
    assert (await http.get("/api/account", headers=client.auth(token))).json()[
        "mfa_enabled"
    ] is True

    # search
    found = await http.get("/api/products", params={"q": "honey", "page_size": 50})
    assert found.status_code == 200
    page = found.json()
    assert page["total"] > 0 and page["items"]
    item = next(i for i in page["items"] if i["in_stock"])
    product = (await http.get(f"/api/products/{item['sku']}")).json()
    assert product["total_stock"] > 0 and product["hs_code"]

    # cart, quote, checkout
    added = await client.add_to_cart(token, item["sku"], 1)
    assert added.status_code == 200, added.text
    assert added.json()["subtotal"] == {"amount": item["price"]["amount"], "currency": "EUR"}
    quote = await http.post(
        "/api/checkout/quote",
        json={"country": "DE", "postal_code": "10115"},
        headers=client.auth(token),
    )
    assert quote.status_code == 200, quote.text
    option = quote.json()["options"][0]
    placed = await client.checkout(token, shipping_option=option["id"])
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["status"] == "paid"
    assert order["total"]["amount"] == item["price"]["amount"] + option["price"]["amount"]
    assert order["shipping_address"]["country"] == ADDRESS["country"]
    assert [e["to_status"] for e in order["events"]] == ["pending_payment", "paid"]

    # the order is in the history; the cart is empty; stock went down by one
    history = (await http.get("/api/orders", headers=client.auth(token))).json()
    assert [o["id"] for o in history["items"]] == [order["id"]]
    assert (await http.get("/api/cart", headers=client.auth(token))).json()["items"] == []
    assert (await client.product(item["sku"]))["total_stock"] == product["total_stock"] - 1

    # metrics: the request histogram and the business counters moved
    after = samples((await http.get("/metrics")).text)
    checkout_labels = {"route": "/api/checkout", "method": "POST", "status": "201"}
    assert total(after, "shop_http_request_duration_seconds_count", **checkout_labels) >= 1
    assert (
        total(after, "shop_http_request_duration_seconds_bucket", le="+Inf", **checkout_labels) >= 1
    )
    assert total(after, "shop_http_requests_total", route="/api/products/{sku}") > 0
    for name, labels in (
        ("shop_orders_total", {"outcome": "placed"}),
        ("shop_orders_total", {"outcome": "paid"}),
        ("shop_revenue_minor_units_total", {"currency": "EUR"}),
    ):
        assert total(after, name, **labels) - total(before, name, **labels) >= 1, name
    assert (
        total(after, "shop_revenue_minor_units_total", currency="EUR")
        - total(before, "shop_revenue_minor_units_total", currency="EUR")
        >= order["total"]["amount"]
    )
    assert total(after, "shop_cache_requests_total") > 0
