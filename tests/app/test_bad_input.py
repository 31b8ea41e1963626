"""Bad input gets a 4xx JSON error, never a 5xx, and writes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest

from tests.app.client import ADDRESS, ShopClient

INJECTIONS = [
    "' OR '1'='1",
    "1; DROP TABLE products; --",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "%00",
    "../../etc/passwd",
    "{{7*7}}",
    "\u202e\u0000",
]


def assert_json_4xx(response, status: int | None = None) -> dict:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if status is not None:
        assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] and error["message"]
    return error


async def test_malformed_json_is_422(client: ShopClient) -> None:
    token = await client.customer()
    for raw in (b"{", b"{'quantity': 1}", b"[1,2", b"null", b"", b'{"quantity": 1,}'):
        response = await client.http.put(
            "/api/cart/items/SKU-000001",
            content=raw,
            headers={**client.auth(token), "Content-Type": "application/json"},
        )
        assert_json_4xx(response)


async def test_invalid_utf8_and_lone_surrogates_are_refused(client: ShopClient) -> None:
    for raw in (
        b'{"email": "a\xff@example.com", "password": "xxxxxxxxxxxx", "full_name": "x"}',
        b'{"email": "a@example.com", "password": "xxxxxxxxxxxx", "full_name": "\\ud800"}',
        b'{"email": "a@example.com", "password": "xxxxxxxxxxxx", "full_name": "nul\\u0000byte"}',
    ):
        response = await client.http.post(
            "/api/auth/register", content=raw, headers={"Content-Type": "application/json"}
        )
        assert_json_4xx(response)
    for path in ("/api/products/%FF%FE", "/api/products/%00", "/api/products?q=%FF%FE%00"):
        response = await client.http.get(path)
        assert response.status_code < 500, (path, response.text)


@pytest.mark.parametrize(
    "quantity", [0, -1, -(2**63), 10**6, 2**63, 10**40, 1.5, "1x", None, True, [1]]
)
async def test_bad_quantities_are_422(client: ShopClient, quantity: object) -> None:
    token = await client.customer()
    response = await client.http.put(
        "/api/cart/items/SKU-000001", json={"quantity": quantity}, headers=client.auth(token)
    )
    assert_json_4xx(response, 422)
    assert (await client.http.get("/api/cart", headers=client.auth(token))).json()["items"] == []


async def test_unknown_sku_is_404_everywhere(client: ShopClient) -> None:
    token = await client.customer()
    assert_json_4xx(await client.http.get("/api/products/NO-SUCH-SKU"), 404)
    assert_json_4xx(await client.add_to_cart(token, "NO-SUCH-SKU"), 404)
    assert_json_4xx(
        await client.http.delete("/api/cart/items/NO-SUCH-SKU", headers=client.auth(token)), 404
    )
    # and the failed add created nothing
    assert (await client.http.get("/api/cart", headers=client.auth(token))).json()["items"] == []


@pytest.mark.parametrize("text", INJECTIONS)
async def test_injection_strings_are_plain_data(client: ShopClient, text: str) -> None:
    search = await client.http.get("/api/products", params={"q": text})
    assert search.status_code in (200, 422), search.text
    sku = await client.http.get(f"/api/products/{quote(text, safe='')}")
    assert 400 <= sku.status_code < 500
    email = await client.register()
    token = await client.login(email)
    address = {**ADDRESS, "full_name": text, "line1": text}
    stored = await client.http.post(
        "/api/account/addresses", json=address, headers=client.auth(token)
    )
    if stored.status_code == 201:  # accepted text comes back verbatim, as JSON data
        assert stored.json()["line1"] == text.strip()
    else:
        assert_json_4xx(stored, 422)
    assert (await client.http.get("/api/products/SKU-000001")).status_code == 200


async def test_oversized_bodies_are_413_declared_or_chunked(client: ShopClient) -> None:
    big = b'{"quantity": 1, "pad": "' + b"x" * 200_000 + b'"}'
    declared = await client.http.put(
        "/api/cart/items/SKU-000001", content=big, headers={"Content-Type": "application/json"}
    )
    assert_json_4xx(declared, 413)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    chunked = await client.http.put(
        "/api/cart/items/SKU-000001", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_json_4xx(chunked, 413)


async def test_wrong_types_and_unknown_fields_are_422(client: ShopClient) -> None:
    token = await client.customer()
    for body in (
        {
            "address": "nowhere",
            "shipping_option": "globex:standard",
            "payment": {"channel": "card", "token": "t"},
        },
        {
            "address": ADDRESS,
            "shipping_option": 7,
            "payment": {"channel": "card", "token": "tok_visa"},
        },
        {
            "address": ADDRESS,
            "shipping_option": "globex:standard",
            "payment": {"channel": "cash", "token": "x"},
        },
        {
            "address": ADDRESS,
            "shipping_option": "globex:standard",
            "payment": {"channel": "card"},
            "x": 1,
        },
    ):
        response = await client.http.post(
            "/api/checkout",
            json=body,
            headers={**client.auth(token), "Idempotency-Key": "k-0000000001"},
        )
        assert_json_4xx(response, 422)
    missing_key = await client.http.post("/api/checkout", json={}, headers=client.auth(token))
    assert_json_4xx(missing_key, 422)


async def test_a_refused_checkout_writes_nothing(client: ShopClient) -> None:
    admin = await client.admin()
    sku = await client.create_product(admin, stock={"WH-KYIV": 2})
    token = await client.customer()
    await client.add_to_cart(token, sku, 2)
    unknown_option = await client.checkout(token, shipping_option="teleport:now")
    assert assert_json_4xx(unknown_option, 409)["code"] == "shipping_option_unavailable"
    embargoed = await client.http.post(
        "/api/checkout",
        json={
            "address": {**ADDRESS, "country": "KP"},
            "shipping_option": "globex:standard",
            "payment": {"channel": "card", "token": "tok_visa"},
        },
        headers={**client.auth(token), "Idempotency-Key": "k-embargo-001"},
    )
    # no courier delivers there, so no option is offered
    assert assert_json_4xx(embargoed, 409)["code"] == "shipping_option_unavailable"
    assert (await client.product(sku))["total_stock"] == 2
    assert (await client.http.get("/api/orders", headers=client.auth(token))).json()["total"] == 0
    assert (await client.http.get("/api/cart", headers=client.auth(token))).json()[
        "item_count"
    ] == 2


async def test_bad_search_parameters_are_422(client: ShopClient) -> None:
    for params in (
        {"page": 0},
        {"page_size": 1000},
        {"min_price": -1},
        {"category": "Not A Slug"},
        {"sort": "random"},
        {"page": 9999, "page_size": 100},
        {"page": 101, "page_size": 1},  # past the result window, whatever the page size
        {"q": "x" * 500},
    ):
        assert_json_4xx(await client.http.get("/api/products", params=params), 422)


async def test_search_parameters_the_document_allows_are_answered(client: ShopClient) -> None:
    """What /openapi.json allows is served, not refused (tests/app/test_api_contract.py)."""
    empty_range = await client.http.get("/api/products", params={"min_price": 500, "max_price": 1})
    assert empty_range.status_code == 200 and empty_range.json()["items"] == []
    many_words = await client.http.get(
        "/api/products", params={"q": "honey " + " ".join(f"w{n}" for n in range(20))}
    )
    assert many_words.status_code == 200, many_words.text  # words after the 8th are not used
    last_page = await client.http.get("/api/products", params={"page": 100, "page_size": 100})
    assert last_page.status_code == 200, last_page.text
