"""TLS on every hop of the shop: it serves HTTPS when given a certificate (the load
balancer's hop to the app servers is encrypted too), refuses to start with half a TLS
configuration, talks to a TLS-only Redis (rediss://) and to its partners (payments and
couriers over HTTPS, mail with STARTTLS) with their certificates verified, and in
production refuses partner settings that would send data in clear."""

from __future__ import annotations

import asyncio
import os
import smtplib
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote, urlsplit

import aiosmtplib
import httpx
import pytest
import redis
from pydantic import ValidationError

from app.sandbox.tls import PROVIDER_TLS12_CIPHERS
from app.settings import Settings
from app.tls import TLS12_AEAD_CIPHERS
from app.wiring import InsecurePartnerSettings, build_services
from local_processes import stop as stop_process
from tests.app.client import ShopClient
from tests.certificates import issue_ca_and_server_cert
from tests.conftest import (
    PartnerSandboxes,
    ShopServer,
    production_shop_env,
    start_partner_sandboxes,
)
from tests.tls_suites import AEAD_SUITES, CBC_SUITES, agreed_suite, start_tls_redis


def _https_shop(
    shop_factory: Callable[..., ShopServer], tmp_path: Path, seed_products: int
) -> tuple[ShopServer, Path]:
    """A shop serving HTTPS with a certificate of a new CA: (the shop, the CA file)."""
    ca, cert, key = issue_ca_and_server_cert(tmp_path)
    shop = shop_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}",
        workers=1,
        seed_products=seed_products,
        extra_env={"TLS_CERT_FILE": str(cert), "TLS_KEY_FILE": str(key)},
        ca_file=str(ca),
    )
    return shop, ca


async def test_the_shop_serves_https_with_its_certificate(
    shop_factory: Callable[..., ShopServer], tmp_path: Path
) -> None:
    shop, ca = _https_shop(shop_factory, tmp_path, seed_products=20)
    assert shop.url.startswith("https://")
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(ca))) as client:
        answer = await client.get(f"{shop.url}/api/products?page_size=1")
    assert answer.status_code == 200, answer.text
    # nothing is served in clear on that port
    plain = shop.url.replace("https://", "http://")
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"{plain}/readyz")


def test_half_a_tls_configuration_is_refused(tmp_path: Path) -> None:
    _, cert, _ = issue_ca_and_server_cert(tmp_path)
    with pytest.raises(ValidationError, match="TLS_CERT_FILE and TLS_KEY_FILE go together"):
        Settings(tls_cert_file=cert)
    with pytest.raises(ValidationError, match=r"TLS_KEY_FILE: .* is not a readable file"):
        Settings(tls_cert_file=cert, tls_key_file=tmp_path / "missing.key")


async def test_the_shop_uses_redis_over_verified_tls(
    shop_factory: Callable[..., ShopServer], tmp_path: Path
) -> None:
    redis_process, port, ca = start_tls_redis(tmp_path)
    try:
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={quote(str(ca), safe='')}"
        shop = shop_factory(
            f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}",
            workers=1,
            seed_products=20,
            redis_url=url,
        )
        async with httpx.AsyncClient(base_url=shop.url) as client:
            page = (await client.get("/api/products?page_size=1")).json()
            sku = page["items"][0]["sku"]
            assert (await client.get(f"/api/products/{sku}")).status_code == 200
        store = redis.Redis.from_url(url)
        assert store.exists(f"shop:catalog:product:{sku}")
        # the server speaks only TLS: a plain client gets nowhere
        with pytest.raises(redis.ConnectionError):
            redis.Redis(port=port, socket_timeout=2).ping()
    finally:
        stop_process(redis_process)


# --- the shop's partners over TLS -------------------------------------------------------


@pytest.fixture(scope="module")
def tls_sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PartnerSandboxes]:
    sandboxes = start_partner_sandboxes(tmp_path_factory.mktemp("partners-tls"))
    yield sandboxes
    sandboxes.stop()


async def test_a_production_shop_pays_quotes_and_mails_over_verified_tls(
    shop_factory: Callable[..., ShopServer],
    tls_sandboxes: PartnerSandboxes,
    tmp_path: Path,
) -> None:
    shop = shop_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}",
        workers=1,
        seed_products=5,
        payments_url=tls_sandboxes.payments_url,
        extra_env={**tls_sandboxes.shop_env(), **production_shop_env()},
    )
    assert tls_sandboxes.payments_url.startswith("https://")
    async with httpx.AsyncClient(base_url=shop.url, timeout=30) as http:
        client = ShopClient(http, shop)
        sku = await client.create_product(await client.admin(), stock={"WH-KYIV": 5})
        email = await client.register()
        token = await client.login(email)
        assert (await client.add_to_cart(token, sku)).status_code == 200
        placed = await client.checkout(token)
        assert placed.status_code == 201, placed.text
        assert placed.json()["status"] == "paid"
    async with httpx.AsyncClient(base_url=tls_sandboxes.admin_url, timeout=10) as admin:
        for _ in range(100):  # the outbox worker sends within a poll or two
            listing = (await admin.get("/smtp/messages", params={"to": email})).json()
            if listing["items"]:
                break
            await asyncio.sleep(0.1)
    assert listing["items"], "no order mail reached the SMTP sink over STARTTLS"
    # the operator's reconcile command reads the providers' ledgers over the same TLS
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTNERS_")}
    env.update(tls_sandboxes.shop_env(), DATABASE_URL=shop.database_url)
    report = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app", "reconcile", "--settle-seconds", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stdout + report.stderr


async def test_the_sandbox_smtp_takes_no_mail_before_starttls(
    tls_sandboxes: PartnerSandboxes,
) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@shop.test", "b@shop.test", "x"
    message.set_content("in clear")
    with pytest.raises(aiosmtplib.SMTPException, match="STARTTLS"):
        await aiosmtplib.send(
            message, hostname="127.0.0.1", port=tls_sandboxes.smtp_port, start_tls=False
        )


def test_the_sandbox_payments_require_the_api_key(tls_sandboxes: PartnerSandboxes) -> None:
    url = f"{tls_sandboxes.payments_url}/card-primary/v1/charges"
    verify = ssl.create_default_context(cafile=str(tls_sandboxes.ca_file))
    for authorization in (None, "Bearer not-the-key", f"Basic {tls_sandboxes.payments_api_key}"):
        headers = {"Authorization": authorization} if authorization else {}
        refused = httpx.get(url, headers=headers, verify=verify)
        assert refused.status_code == 401, (authorization, refused.text)
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    key = {"Authorization": f"Bearer {tls_sandboxes.payments_api_key}"}
    assert httpx.get(url, headers=key, verify=verify).status_code == 200


async def test_the_sandbox_smtp_takes_no_mail_without_the_login(
    tls_sandboxes: PartnerSandboxes,
) -> None:
    assert tls_sandboxes.smtp_login is not None
    username, password = tls_sandboxes.smtp_login
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@shop.test", "b@shop.test", "x"
    message.set_content("no login")
    tls = ssl.create_default_context(cafile=str(tls_sandboxes.ca_file))

    async def send(**login: str) -> None:
        await aiosmtplib.send(
            message, hostname="127.0.0.1", port=tls_sandboxes.smtp_port, tls_context=tls, **login
        )

    with pytest.raises(aiosmtplib.SMTPException, match=r"(?i)auth"):
        await send()
    with pytest.raises(aiosmtplib.SMTPAuthenticationError):
        await send(username=username, password=password + "x")
    await send(username=username, password=password)


def test_production_refuses_partners_in_clear_or_without_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secure = {
        "PARTNERS_PAYMENTS_BASE_URL": "https://payments.example",
        "PARTNERS_COURIERS_BASE_URL": "https://couriers.example",
        "PARTNERS_SMTP_STARTTLS": "true",
        "PARTNERS_PAYMENTS_API_KEY": "sk_live_example",
        "PARTNERS_SMTP_USERNAME": "shop-mailer",
        "PARTNERS_SMTP_PASSWORD": "example",
    }
    production = {key.lower(): value for key, value in production_shop_env().items()}
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}", **production)
    weakened = {
        "PARTNERS_PAYMENTS_BASE_URL": "http://payments.example",
        "PARTNERS_COURIERS_BASE_URL": "http://couriers.example",
        "PARTNERS_SMTP_STARTTLS": "false",
        "PARTNERS_PAYMENTS_API_KEY": None,
        "PARTNERS_SMTP_PASSWORD": None,
    }
    for name, value in weakened.items():
        with monkeypatch.context() as env:
            for key, good in secure.items():
                env.setenv(key, good)
            if value is None:
                env.delenv(name)
            else:
                env.setenv(name, value)
            with pytest.raises(InsecurePartnerSettings, match=name):
                build_services(settings)
    for key, good in secure.items():
        monkeypatch.setenv(key, good)
    services = build_services(settings)  # everything in place: it builds
    asyncio.run(services.aclose())


# --- which TLS suites the servers agree to ------------------------------------------------


@pytest.mark.parametrize("ciphers", [TLS12_AEAD_CIPHERS, PROVIDER_TLS12_CIPHERS])
def test_the_tls_rules_admit_only_ecdhe_aead_suites_under_tls12(ciphers: str) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.set_ciphers(ciphers)
    tls12 = [c for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12, "no TLS 1.2 suite left"
    assert all(c["aead"] and c["kea"] == "kx-ecdhe" for c in tls12), tls12


def _starttls_with(port: int, suites: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(f"{suites}:@SECLEVEL=0")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.starttls(context=context)


def test_the_shop_and_the_sandboxes_speak_only_aead_suites(
    shop_factory: Callable[..., ShopServer], tls_sandboxes: PartnerSandboxes, tmp_path: Path
) -> None:
    shop, _ = _https_shop(shop_factory, tmp_path, seed_products=1)
    servers = {
        "shop": shop.url,
        "payments": tls_sandboxes.payments_url,
        "couriers": tls_sandboxes.couriers_url,
    }
    agreed = {}
    for name, url in servers.items():
        where = urlsplit(url)
        assert where.hostname and where.port, url
        agreed[name] = (
            agreed_suite(where.hostname, where.port, CBC_SUITES),
            agreed_suite(where.hostname, where.port, AEAD_SUITES),
        )
    assert all(cbc is None for cbc, _ in agreed.values()), agreed
    assert all(aead in AEAD_SUITES.split(":") for _, aead in agreed.values()), agreed
    with pytest.raises(ssl.SSLError):
        _starttls_with(tls_sandboxes.smtp_port, CBC_SUITES)
    _starttls_with(tls_sandboxes.smtp_port, AEAD_SUITES)
