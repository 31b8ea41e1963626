"""Accounts: registration, lockout and throttling, TOTP rules, addresses, guest cart merge."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pyotp
import pytest

from tests.app.client import ShopClient, unique_email
from tests.conftest import ShopServer

PASSWORD = "correct horse battery"


async def test_duplicate_registration_answers_like_a_new_one(client: ShopClient) -> None:
    # no account enumeration: the same 201 and body, and the existing account is unchanged
    email = await client.register()
    again = await client.http.post(
        "/api/auth/register", json={"email": email.upper(), "password": PASSWORD, "full_name": "X"}
    )
    assert again.status_code == 201
    assert again.json()["status"] == "accepted"


async def test_short_password_and_bad_email_are_422(client: ShopClient) -> None:
    for body in (
        {"email": unique_email(), "password": "short", "full_name": "X"},
        {"email": "not-an-email", "password": PASSWORD, "full_name": "X"},
        {"email": unique_email(), "password": PASSWORD, "full_name": ""},
    ):
        response = await client.http.post("/api/auth/register", json=body)
        assert response.status_code == 422, response.text


async def test_account_locks_after_repeated_failures_even_for_the_right_password(
    client: ShopClient,
) -> None:
    # the lock is now a growing delay for this (account, client): 1 s after the fifth failure
    admin = await client.admin()  # logged in first: the check below is within that second
    email = await client.register()
    for _ in range(5):
        wrong = await client.http.post(
            "/api/auth/login", json={"email": email, "password": "wrong password!"}
        )
        assert wrong.status_code == 401
        assert wrong.json()["error"]["message"] == "wrong e-mail or password"
    locked = await client.http.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert "locked" in locked.json()["error"]["message"]
    # the admin sees the lock and lifts it
    users = (
        await client.http.get(
            "/api/admin/users", params={"email": email}, headers=client.auth(admin)
        )
    ).json()
    assert users["items"][0]["locked_until"] is not None
    unlocked = await client.http.post(
        f"/api/admin/users/{users['items'][0]['id']}/unlock", headers=client.auth(admin)
    )
    assert unlocked.status_code == 204
    assert (
        await client.http.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    ).status_code == 200


async def test_unknown_accounts_lock_the_same_way(client: ShopClient) -> None:
    email = unique_email("nobody")
    codes = [
        (
            await client.http.post(
                "/api/auth/login", json={"email": email, "password": "whatever123"}
            )
        ).status_code
        for _ in range(6)
    ]
    assert codes == [401] * 5 + [429]


async def test_totp_code_is_single_use_and_wrong_codes_are_refused(client: ShopClient) -> None:
    email = await client.register()
    token = await client.login(email)
    totp = pyotp.TOTP((await client.start_totp(token)).json()["secret"])
    wrong = await client.http.post(
        "/api/account/mfa/totp/verify", json={"code": "000000"}, headers=client.auth(token)
    )
    assert wrong.status_code in (403, 200)  # 000000 may (1 in a million) be the current code
    code = totp.now()
    if wrong.status_code == 403:
        assert wrong.json()["error"]["code"] == "totp_code_rejected"
        assert (
            await client.http.post(
                "/api/account/mfa/totp/verify", json={"code": code}, headers=client.auth(token)
            )
        ).status_code == 200
    # the password alone no longer gives a token
    step = (
        await client.http.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    ).json()
    assert step["mfa_required"] and "access_token" not in step
    # a code already used (the enrolment one, or an older one) is refused
    reused = await client.http.post(
        "/api/auth/login/mfa", json={"mfa_token": step["mfa_token"], "code": code}
    )
    assert reused.status_code == 401
    fresh = totp.at(time.time() + totp.interval)
    ok = await client.http.post(
        "/api/auth/login/mfa", json={"mfa_token": step["mfa_token"], "code": fresh}
    )
    assert ok.status_code == 200, ok.text
    # the MFA step token is spent
    again = await client.http.post(
        "/api/auth/login/mfa", json={"mfa_token": step["mfa_token"], "code": fresh}
    )
    assert again.status_code == 401


async def test_bad_tokens_are_401(client: ShopClient) -> None:
    for header in ("Bearer nope", "Basic abc", "Bearer"):
        response = await client.http.get("/api/account", headers={"Authorization": header})
        assert response.status_code == 401, header


async def test_addresses_round_trip_and_validate_country(client: ShopClient) -> None:
    token = await client.customer()
    address = {
        "full_name": "Ann",
        "line1": "1 Main St",
        "city": "Toronto",
        "postal_code": "M5V 2T6",
        "country": "CA",
    }
    created = await client.http.post(
        "/api/account/addresses", json=address, headers=client.auth(token)
    )
    assert created.status_code == 201, created.text
    bad = await client.http.post(
        "/api/account/addresses", json={**address, "country": "XX"}, headers=client.auth(token)
    )
    assert bad.status_code == 422 and "country" in bad.json()["error"]["message"]
    listed = (await client.http.get("/api/account/addresses", headers=client.auth(token))).json()
    assert [a["city"] for a in listed] == ["Toronto"]


async def test_guest_cart_is_merged_into_the_users_cart(client: ShopClient) -> None:
    guest = await client.http.put("/api/cart/items/SKU-000002", json={"quantity": 1})
    if guest.status_code == 409:  # that seeded product has no stock: use one that has
        admin = await client.admin()
        sku = await client.create_product(admin, stock={"WH-KYIV": 5})
        guest = await client.http.put(f"/api/cart/items/{sku}", json={"quantity": 1})
    assert guest.status_code == 200, guest.text
    cart_id = guest.headers["X-Cart-Id"]
    sku = guest.json()["items"][0]["sku"]
    # the guest cart is reachable by its id, and not without it
    assert (await client.http.get("/api/cart", headers={"X-Cart-Id": cart_id})).json()[
        "item_count"
    ] == 1
    assert (await client.http.get("/api/cart")).json()["item_count"] == 0
    token = await client.customer()
    merged = await client.http.get(
        "/api/cart", headers={**client.auth(token), "X-Cart-Id": cart_id}
    )
    assert [i["sku"] for i in merged.json()["items"]] == [sku]
    assert merged.headers["X-Cart-Id"] != cart_id  # now the user's own cart
    assert (await client.http.get("/api/cart", headers={"X-Cart-Id": cart_id})).json()[
        "item_count"
    ] == 0


async def test_failures_from_one_ip_block_that_ip_across_accounts(
    shop_factory: Callable[..., ShopServer], tmp_path_factory: pytest.TempPathFactory
) -> None:
    db = tmp_path_factory.mktemp("ip-throttle") / "shop.db"
    shop = shop_factory(
        f"sqlite+aiosqlite:///{db}",
        workers=1,
        seed_products=20,
        extra_env={"IP_MAX_FAILURES": "3", "LOGIN_MAX_FAILURES": "100"},
    )
    async with httpx.AsyncClient(base_url=shop.url, timeout=30) as http:
        client = ShopClient(http, shop)
        email = await client.register()
        for _ in range(3):  # three different wrong accounts, one address
            wrong = await http.post(
                "/api/auth/login", json={"email": unique_email("x"), "password": "nope nope 1"}
            )
            assert wrong.status_code == 401
        blocked = await http.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert blocked.status_code == 429
        assert blocked.json()["error"]["message"].startswith("too many attempts")
