"""Account security: attempts counted before the password, throttled per (account, client)
with growing delays, single-use TOTP under concurrency, no account enumeration at
registration, registration throttling, logout, admin TOTP, the audit log, TOTP secrets
encrypted at rest.

A client IP of its own is a real source address: loopback answers on all of 127/8, and
the shop trusts X-Forwarded-For only from FORWARDED_ALLOW_IPS.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import httpx
import pyotp
import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError
from sqlalchemy import create_engine, text

from app.settings import Settings
from tests.app.client import PASSWORD, ShopClient, unique_email
from tests.app.test_ops import value
from tests.conftest import ShopServer

LIMIT = 5  # LOGIN_MAX_FAILURES of the test shops (the default)


def other_ip() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(0, 254)}.{random.randint(1, 254)}"


def from_ip(shop: ShopServer, ip: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=ip)
    return httpx.AsyncClient(base_url=shop.url, timeout=30, transport=transport)


def wrong(email: str) -> dict[str, str]:
    return {"email": email, "password": "not the password"}


async def checks(http: httpx.AsyncClient) -> float:
    return value((await http.get("/metrics")).text, "shop_login_password_checks_total")


def shop_on(
    backend: str,
    shop_factory: Callable[..., ShopServer],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    **env: str,
) -> ShopServer:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('security') / 'shop.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    return shop_factory(url, seed_products=20, extra_env=env)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_concurrent_wrong_passwords_are_evaluated_at_most_the_limit(
    backend: str,
    shop_factory: Callable[..., ShopServer],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> None:
    # The production delay: the test shops' 1 s would rightly let a sixth guess through
    # when a loaded machine takes longer than that to answer the fifty.
    shop = shop_on(
        backend, shop_factory, tmp_path_factory, request, LOGIN_BACKOFF_INITIAL_SECONDS="30"
    )
    async with httpx.AsyncClient(base_url=shop.url, timeout=30) as http:
        await _at_most_the_limit_evaluated(ShopClient(http, shop))


async def _at_most_the_limit_evaluated(client: ShopClient) -> None:
    email = await client.register()
    before = await checks(client.http)
    async with from_ip(client.shop, other_ip()) as stranger:
        answers = await asyncio.gather(
            *(stranger.post("/api/auth/login", json=wrong(email)) for _ in range(50))
        )
    codes = [a.status_code for a in answers]
    assert codes.count(401) <= LIMIT, codes
    assert codes.count(401) + codes.count(429) == 50, codes
    assert all(int(a.headers["Retry-After"]) >= 1 for a in answers if a.status_code == 429)
    assert await checks(client.http) - before <= LIMIT


async def test_a_strangers_failures_do_not_lock_the_owner_out(client: ShopClient) -> None:
    email = await client.register()
    async with from_ip(client.shop, other_ip()) as stranger:
        codes = [
            (await stranger.post("/api/auth/login", json=wrong(email))).status_code
            for _ in range(LIMIT + 1)
        ]
        assert codes == [401] * LIMIT + [429]
        # the stranger waits out the delay: one more guess, then a longer delay
        blocked = await stranger.post("/api/auth/login", json=wrong(email))
        await asyncio.sleep(int(blocked.headers["Retry-After"]) + 0.2)
        assert (await stranger.post("/api/auth/login", json=wrong(email))).status_code == 401
        again = await stranger.post("/api/auth/login", json=wrong(email))
        assert again.status_code == 429 and int(again.headers["Retry-After"]) == 2
        # the same for the admin's e-mail
        for _ in range(LIMIT + 1):
            await stranger.post("/api/auth/login", json=wrong(client.shop.admin_email))
    # the owner, from their own client, is not affected
    async with from_ip(client.shop, other_ip()) as owner:
        assert await ShopClient(owner, client.shop).login(email)
    assert await client.admin_login()


async def test_totp_enrolment_asks_for_the_password(client: ShopClient) -> None:
    email = await client.register()
    token = await client.login(email)
    without = await client.http.post("/api/account/mfa/totp", headers=client.auth(token))
    assert without.status_code == 422, without.text
    before = await checks(client.http)
    wrong_password = await client.start_totp(token, "not the password")
    assert wrong_password.status_code == 401, wrong_password.text
    assert "secret" not in wrong_password.json()
    assert await checks(client.http) == before + 1
    enrol = await client.start_totp(token, PASSWORD)
    assert enrol.status_code == 200, enrol.text
    assert enrol.json()["secret"]


async def test_totp_enrolment_guesses_are_throttled(client: ShopClient) -> None:
    token = await client.login(await client.register())
    codes = [(await client.start_totp(token, f"guess {n}")).status_code for n in range(LIMIT + 1)]
    assert codes == [401] * LIMIT + [429], codes
    # the throttle answers before the password is looked at, even the right one
    assert (await client.start_totp(token, PASSWORD)).status_code == 429


async def test_totp_enrolment_codes_are_throttled(client: ShopClient) -> None:
    token = await client.login(await client.register())
    totp = pyotp.TOTP((await client.start_totp(token)).json()["secret"])
    right = totp.now()
    wrong_code = f"{(int(right) + 1) % 1_000_000:06d}"

    async def confirm(code: str) -> int:
        answer = await client.http.post(
            "/api/account/mfa/totp/verify", json={"code": code}, headers=client.auth(token)
        )
        return answer.status_code

    codes = [await confirm(wrong_code) for _ in range(LIMIT + 1)]
    assert codes == [403] * LIMIT + [429], codes
    # the throttle answers before the code is looked at, even the right one
    assert await confirm(right) == 429


async def test_one_totp_code_logs_in_once_under_concurrency(client: ShopClient) -> None:
    email = await client.register()
    token = await client.login(email)
    enrol = await client.start_totp(token)
    totp = pyotp.TOTP(enrol.json()["secret"])
    assert (
        await client.http.post(
            "/api/account/mfa/totp/verify", json={"code": totp.now()}, headers=client.auth(token)
        )
    ).status_code == 200
    steps = []
    for _ in range(4):
        step = await client.http.post(
            "/api/auth/login", json={"email": email, "password": PASSWORD}
        )
        steps.append(step.json()["mfa_token"])
    code = totp.at(time.time() + totp.interval)
    answers = await asyncio.gather(
        *(
            client.http.post("/api/auth/login/mfa", json={"mfa_token": t, "code": code})
            for t in steps
        )
    )
    codes = [a.status_code for a in answers]
    assert codes.count(200) == 1, codes


async def test_registration_answers_the_same_for_a_taken_e_mail(client: ShopClient) -> None:
    email = unique_email()
    body = {"email": email, "password": PASSWORD, "full_name": "X"}
    first = await client.http.post("/api/auth/register", json=body)
    again = await client.http.post(
        "/api/auth/register", json={**body, "email": email.upper(), "password": "other pass 12"}
    )
    assert first.status_code == again.status_code == 201, again.text
    assert first.json() == again.json()
    assert "id" not in first.json() and "email" not in first.json()
    assert await client.login(email)  # the account is unchanged


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_burst_of_registrations_from_one_client_is_throttled(
    backend: str,
    shop_factory: Callable[..., ShopServer],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> None:
    shop = shop_on(backend, shop_factory, tmp_path_factory, request, REGISTER_MAX_PER_IP="5")
    async with from_ip(shop, other_ip()) as http:
        answers = await asyncio.gather(
            *(
                http.post(
                    "/api/auth/register",
                    json={"email": unique_email(), "password": PASSWORD, "full_name": "Flood"},
                )
                for _ in range(12)
            )
        )
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * 5 + [429] * 7, codes
    async with httpx.AsyncClient(base_url=shop.url, timeout=30) as http:  # another client
        assert await ShopClient(http, shop).register()


async def test_logout_revokes_this_session_and_logout_all_every_session(
    client: ShopClient,
) -> None:
    email = await client.register()
    first, second, third = [await client.login(email) for _ in range(3)]
    out = await client.http.post("/api/auth/logout", headers=client.auth(first))
    assert out.status_code == 204
    assert (await client.http.get("/api/account", headers=client.auth(first))).status_code == 401
    assert (await client.http.get("/api/account", headers=client.auth(second))).status_code == 200
    out = await client.http.post("/api/auth/logout-all", headers=client.auth(second))
    assert out.status_code == 204
    for token in (second, third):
        response = await client.http.get("/api/account", headers=client.auth(token))
        assert response.status_code == 401


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_the_back_office_needs_admin_totp(
    backend: str,
    shop_factory: Callable[..., ShopServer],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> None:
    shop = shop_on(backend, shop_factory, tmp_path_factory, request)
    async with httpx.AsyncClient(base_url=shop.url, timeout=30) as http:
        password_only = await ShopClient(http, shop).login(shop.admin_email, shop.admin_password)
        refused = await http.get("/api/admin/users", headers=ShopClient.auth(password_only))
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "admin_mfa_required"
        client = ShopClient(http, shop)
        other = await client.login(shop.admin_email, shop.admin_password)
        admin = await client.admin()  # enrols TOTP with the first token
        assert (await http.get("/api/admin/users", headers=client.auth(admin))).status_code == 200
        # sessions opened without TOTP end with the enrolment; now the password is not enough
        assert (await http.get("/api/account", headers=client.auth(other))).status_code == 401
        step = await http.post(
            "/api/auth/login", json={"email": shop.admin_email, "password": shop.admin_password}
        )
        assert step.json()["mfa_required"] is True
        assert await client.admin_login()


async def test_admin_changes_are_written_to_the_audit_log(client: ShopClient) -> None:
    admin = await client.admin()
    sku = await client.create_product(admin, stock={"WH-KYIV": 3}, price=1500)
    patched = await client.http.patch(
        f"/api/admin/products/{sku}", json={"price": 1700}, headers=client.auth(admin)
    )
    assert patched.status_code == 200, patched.text
    email = await client.register()
    users = await client.http.get(
        "/api/admin/users", params={"email": email}, headers=client.auth(admin)
    )
    user_id = users.json()["items"][0]["id"]
    unlocked = await client.http.post(
        f"/api/admin/users/{user_id}/unlock", headers=client.auth(admin)
    )
    assert unlocked.status_code == 204
    audit = await client.http.get(
        "/api/admin/audit", params={"page_size": 10}, headers=client.auth(admin)
    )
    assert audit.status_code == 200, audit.text
    entries = audit.json()["items"]
    mine = [e for e in entries if e["target"] in (f"product:{sku}", f"user:{user_id}")]
    assert [e["action"] for e in mine] == [
        "user.unlock",
        "product.update",
        "stock.set",
        "product.create",
    ]
    update = mine[1]
    assert update["before"]["price"]["amount"] == 1500
    assert update["after"]["price"]["amount"] == 1700
    assert mine[2]["after"] == {"warehouse": "WH-KYIV", "quantity": 3}
    assert all(e["actor"] == client.shop.admin_email and e["created_at"] for e in mine)
    token = await client.customer()
    forbidden = await client.http.get("/api/admin/audit", headers=client.auth(token))
    assert forbidden.status_code == 403


def _sync_url(database_url: str) -> str:
    return database_url.replace("sqlite+aiosqlite", "sqlite")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_totp_secrets_are_encrypted_at_rest_and_plaintext_ones_still_work(
    backend: str,
    shop_factory: Callable[..., ShopServer],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> None:
    key = Fernet.generate_key().decode()
    shop = shop_on(backend, shop_factory, tmp_path_factory, request, TOTP_ENCRYPTION_KEY=key)
    engine = create_engine(_sync_url(shop.database_url))
    try:
        async with httpx.AsyncClient(base_url=shop.url, timeout=30) as http:
            client = ShopClient(http, shop)
            email = await client.register()
            token = await client.login(email)
            enrol = await client.start_totp(token)
            secret = enrol.json()["secret"]
            with engine.connect() as conn:
                row = conn.execute(
                    text("SELECT totp_secret, totp_secret_enc FROM users WHERE email = :e"),
                    {"e": email},
                ).one()
            assert row[0] is None
            assert Fernet(key.encode()).decrypt(row[1].encode()).decode() == secret
            # a secret stored in clear by an earlier release keeps working, and is encrypted
            legacy = unique_email("legacy")
            await client.register(legacy)
            plain = pyotp.random_base32()
            with engine.begin() as conn:
                conn.execute(
                    text("UPDATE users SET totp_secret = :s, totp_enabled = true WHERE email = :e"),
                    {"s": plain, "e": legacy},
                )
            step = await http.post("/api/auth/login", json={"email": legacy, "password": PASSWORD})
            done = await http.post(
                "/api/auth/login/mfa",
                json={"mfa_token": step.json()["mfa_token"], "code": pyotp.TOTP(plain).now()},
            )
            assert done.status_code == 200, done.text
            with engine.connect() as conn:
                row = conn.execute(
                    text("SELECT totp_secret, totp_secret_enc FROM users WHERE email = :e"),
                    {"e": legacy},
                ).one()
            assert row[0] is None and row[1]
    finally:
        engine.dispose()


def test_production_settings_refuse_to_start_without_the_totp_key() -> None:
    with pytest.raises(ValidationError, match="TOTP_ENCRYPTION_KEY"):
        Settings(environment="production", totp_encryption_key=None)
    assert Settings(environment="production", totp_encryption_key=Fernet.generate_key().decode())
