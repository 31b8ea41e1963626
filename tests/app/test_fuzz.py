"""Property-based fuzzing of the write endpoints: whatever the body, never a 5xx."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ShopServer

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
address = st.fixed_dictionaries(
    {
        "full_name": st.text(max_size=30),
        "line1": st.text(max_size=30),
        "city": st.text(max_size=20),
        "postal_code": st.text(max_size=14),
        "country": st.text(max_size=3),
    }
)


@pytest.fixture(scope="module")
def fuzz_client(shop: ShopServer) -> httpx.Client:
    with httpx.Client(base_url=shop.url, timeout=30) as http:
        email = "fuzzer-" + shop.url.rsplit(":", 1)[-1] + "@example.com"
        password = "fuzzing password 1"
        http.post(
            "/api/auth/register", json={"email": email, "password": password, "full_name": "Fuzz"}
        )
        token = http.post("/api/auth/login", json={"email": email, "password": password}).json()[
            "access_token"
        ]
        http.headers["Authorization"] = f"Bearer {token}"
        yield http


def assert_not_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.request.url, response.text)
    if response.status_code >= 400:
        assert set(response.json()["error"]) >= {"code", "message"}


@FUZZ
@given(sku=st.text(min_size=1, max_size=30), body=json_values)
def test_cart_put_never_fails_with_5xx(fuzz_client: httpx.Client, sku: str, body: object) -> None:
    path = "/api/cart/items/" + quote(sku, safe="")
    assert_not_server_error(fuzz_client.put(path, json=body))


@FUZZ
@given(body=st.dictionaries(st.sampled_from(["email", "password", "full_name", "x"]), json_values))
def test_register_never_fails_with_5xx(fuzz_client: httpx.Client, body: dict) -> None:
    assert_not_server_error(fuzz_client.post("/api/auth/register", json=body))


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(
            ["q", "category", "brand", "min_price", "max_price", "page", "page_size", "sort"]
        ),
        st.text(max_size=30),
    )
)
def test_search_never_fails_with_5xx(fuzz_client: httpx.Client, params: dict) -> None:
    assert_not_server_error(fuzz_client.get("/api/products", params=params))


@FUZZ
@given(
    addr=address,
    option=st.text(max_size=30),
    payment=st.fixed_dictionaries(
        {"channel": st.sampled_from(["card", "wallet", "x"]), "token": st.text(max_size=20)}
    ),
    key=st.text(alphabet="abcdefghij0123456789-", min_size=8, max_size=20),
)
def test_checkout_never_fails_with_5xx(
    fuzz_client: httpx.Client, addr: dict, option: str, payment: dict, key: str
) -> None:
    body = {"address": addr, "shipping_option": option, "payment": payment}
    assert_not_server_error(
        fuzz_client.post("/api/checkout", json=body, headers={"Idempotency-Key": key})
    )
