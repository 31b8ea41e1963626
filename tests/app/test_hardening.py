"""Hardening of the public surface: readiness, security headers, docs, error texts, quotes."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.app.client import ShopClient
from tests.conftest import (
    PartnerSandboxes,
    PostgresServer,
    ShopServer,
    production_shop_env,
    start_partner_sandboxes,
)

API_CSP = "default-src 'none'; frame-ancestors 'none'"


# --- a TCP proxy in front of PostgreSQL, to take the database away -------------------


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; `stop()` closes it and every connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._stopped:  # accepted in the instant stop() ran: refuse it too
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        # close() alone does not wake a thread blocked in accept() on Linux: that accept
        # would still take one more connection (a pool's reconnect) and forward it.
        with self._lock:
            self._stopped = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def test_a_stopped_proxy_forwards_no_new_connection() -> None:
    """The readiness test below relies on it: a pool reconnecting after stop() must fail."""
    echo = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = echo.accept()
                conn.sendall(conn.recv(16))
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    proxy = TcpProxy(echo.getsockname()[:2])
    time.sleep(0.1)  # the proxy's thread is blocked in accept()
    proxy.stop()
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as late:
            late.sendall(b"ping")
            assert late.recv(16) == b""
    except OSError:
        pass  # refused: as good
    finally:
        echo.close()


@pytest.fixture(scope="module")
def proxied_shop(
    postgres_server: PostgresServer, module_shop_factory: Callable[..., ShopServer]
) -> Iterator[tuple[ShopServer, TcpProxy, str]]:
    url = postgres_server.create_database()
    parts = urlsplit(url)
    proxy = TcpProxy((postgres_server.host, postgres_server.port))
    netloc = parts.netloc.replace(f":{postgres_server.port}", f":{proxy.port}")
    shop = module_shop_factory(urlunsplit(parts._replace(netloc=netloc)), workers=1)
    yield shop, proxy, postgres_server.role
    proxy.stop()


def _leaks(text: str, *secrets: str) -> list[str]:
    words = [
        "127.0.0.1",
        "OperationalError",
        "Exception",
        "refused",
        "Traceback",
        "psycopg",
        "sqlalchemy",
        *secrets,
    ]
    return [w for w in words if w.lower() in text.lower()]


async def test_database_unreachable_is_a_quick_bare_503_on_readyz_and_requests(
    proxied_shop: tuple[ShopServer, TcpProxy, str],
) -> None:
    shop, proxy, role = proxied_shop
    async with httpx.AsyncClient(base_url=shop.url, timeout=30) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}

        proxy.stop()
        deadline = time.monotonic() + 10
        while True:
            started = time.monotonic()
            ready = await http.get("/readyz")
            assert time.monotonic() - started < 3.5  # bounded: the probe's timeouts
            if ready.status_code == 503 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert ready.status_code == 503
        assert ready.json() == {"status": "not_ready", "checks": {"database": "unavailable"}}
        assert not _leaks(ready.text, role, str(proxy.port))

        assert (await http.get("/healthz")).status_code == 200  # liveness: no dependency
        started = time.monotonic()
        search = await http.get("/api/products", params={"q": "unreachable-db-probe"})
        assert time.monotonic() - started < 10
        assert search.status_code == 503, search.text
        error = search.json()["error"]
        assert error["code"] == "database_unavailable"
        assert set(error) == {"code", "message", "request_id"}
        assert not _leaks(search.text, role, str(proxy.port), "products")


async def test_an_unexpected_error_is_a_bare_500(
    postgres_server: PostgresServer, shop_factory: Callable[..., ShopServer]
) -> None:
    url = postgres_server.create_database()
    shop = shop_factory(url, workers=1, seed_products=5)
    name = urlsplit(url).path.lstrip("/")
    postgres_server.psql("ALTER TABLE products RENAME TO products_renamed_away", database=name)
    async with httpx.AsyncClient(base_url=shop.url, timeout=30) as http:
        response = await http.get("/api/products", params={"q": "anything-uncached"})
    assert response.status_code == 500
    error = response.json()["error"]
    assert (error["code"], error["message"]) == ("internal_error", "internal server error")
    assert not _leaks(response.text, "products_renamed_away", "relation", "does not exist")
    assert "does not exist" in shop.log()  # the detail is in the log only


# --- security headers ----------------------------------------------------------------


async def test_security_headers_on_every_answer(client: ShopClient) -> None:
    answers = [
        await client.http.get("/healthz"),
        await client.http.get("/api/products/SKU-000003"),
        await client.http.get("/no/such/page"),
        await client.http.post("/api/auth/login", content=b"{not json"),
    ]
    for answer in answers:
        headers = answer.headers
        assert headers["X-Content-Type-Options"] == "nosniff", answer.url
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers.get_list("Content-Security-Policy") == [API_CSP]
        assert "Strict-Transport-Security" not in headers  # plain HTTP, no trusted TLS proxy
    over_tls = await client.http.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert over_tls.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_hsts_always_when_configured(running_shop_hsts: ShopServer) -> None:
    async with httpx.AsyncClient(base_url=running_shop_hsts.url) as http:
        response = await http.get("/healthz")
    assert response.headers["Strict-Transport-Security"] == "max-age=600"


@pytest.fixture(scope="module")
def tls_partners(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PartnerSandboxes]:
    """Production refuses partners in clear: this shop's sandboxes speak TLS."""
    sandboxes = start_partner_sandboxes(tmp_path_factory.mktemp("prod-partners"))
    yield sandboxes
    sandboxes.stop()


@pytest.fixture(scope="module")
def running_shop_hsts(
    module_shop_factory: Callable[..., ShopServer],
    tmp_path_factory: pytest.TempPathFactory,
    tls_partners: PartnerSandboxes,
) -> ShopServer:
    db = tmp_path_factory.mktemp("prod-shop") / "shop.db"
    return module_shop_factory(
        f"sqlite+aiosqlite:///{db}",
        workers=1,
        seed_products=5,
        payments_url=tls_partners.payments_url,
        extra_env={
            **tls_partners.shop_env(),
            **production_shop_env(),
            "HSTS_ALWAYS": "true",
            "HSTS_MAX_AGE_SECONDS": "600",
        },
    )


# --- API docs --------------------------------------------------------------------------


async def test_docs_are_self_hosted_with_their_own_csp(client: ShopClient) -> None:
    page = await client.http.get("/docs")
    assert page.status_code == 200
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)  # nothing off-site
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert "/docs/assets/swagger-ui-bundle.js" in assets
    assert "/docs/assets/swagger-ui.css" in assets
    for asset in assets:
        served = await client.http.get(asset)
        assert served.status_code == 200 and len(served.content) > 100, asset
    (csp,) = page.headers.get_list("Content-Security-Policy")
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert re.search(r"script-src 'self' 'sha256-[A-Za-z0-9+/=]+'", csp)
    assert "unsafe-eval" not in csp and "http" not in csp
    assert (await client.http.get("/openapi.json")).status_code == 200


async def test_no_docs_or_schema_in_production(running_shop_hsts: ShopServer) -> None:
    async with httpx.AsyncClient(base_url=running_shop_hsts.url) as http:
        for path in ("/docs", "/openapi.json", "/redoc", "/docs/assets/swagger-ui-bundle.js"):
            response = await http.get(path)
            assert response.status_code == 404, path
        assert (await http.get("/readyz")).status_code == 200


# --- anonymous quotes: cached, rate-limited ----------------------------------------------


@pytest.fixture(scope="module")
def own_couriers() -> Iterator[PartnerSandboxes]:
    sandboxes = start_partner_sandboxes()
    yield sandboxes
    sandboxes.stop()


@pytest.fixture(scope="module")
def quote_shop(
    module_shop_factory: Callable[..., ShopServer],
    own_couriers: PartnerSandboxes,
    tmp_path_factory: pytest.TempPathFactory,
) -> ShopServer:
    db = tmp_path_factory.mktemp("quote-shop") / "shop.db"
    return module_shop_factory(
        f"sqlite+aiosqlite:///{db}",
        workers=1,
        extra_env={
            **own_couriers.shop_env(payments=False),
            "QUOTE_RATE_BURST": "5",
            "QUOTE_RATE_PER_MINUTE": "6",
            "QUOTE_CACHE_TTL_SECONDS": "60",
        },
    )


@pytest.fixture
async def quote_client(quote_shop: ShopServer) -> AsyncIterator[ShopClient]:
    async with httpx.AsyncClient(base_url=quote_shop.url, timeout=30) as http:
        yield ShopClient(http, quote_shop)


def _courier_requests(metrics_text: str, courier: str) -> float:
    return sum(
        s.value
        for f in text_string_to_metric_families(metrics_text)
        for s in f.samples
        if s.name == "sandbox_requests_total" and s.labels.get("service") == courier
    )


async def _guest_cart(client: ShopClient, sku: str, quantity: int, ip: str) -> str:
    response = await client.http.put(
        f"/api/cart/items/{sku}", json={"quantity": quantity}, headers={"X-Forwarded-For": ip}
    )
    assert response.status_code == 200, response.text
    return response.headers["X-Cart-Id"]


async def _quote(client: ShopClient, cart_id: str, ip: str, country: str = "FR") -> httpx.Response:
    return await client.http.post(
        "/api/checkout/quote",
        json={"country": country, "postal_code": "75001"},
        headers={"X-Cart-Id": cart_id, "X-Forwarded-For": ip},
    )


async def test_repeated_anonymous_quotes_ask_the_couriers_once(
    quote_client: ShopClient, own_couriers: PartnerSandboxes
) -> None:
    client = quote_client
    admin = await client.admin()
    sku = await client.create_product(admin, stock={"WH-KYIV": 50})  # 400 g
    async with httpx.AsyncClient(base_url=own_couriers.admin_url) as sandbox:
        before = (await sandbox.get("/metrics")).text
        carts = [
            await _guest_cart(client, sku, 1, "10.1.0.1"),  # 400 g
            await _guest_cart(client, sku, 1, "10.1.0.2"),  # another guest, same band
        ]
        answers = [await _quote(client, cart, f"10.1.0.{n}") for n, cart in enumerate(carts * 2)]
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        assert len({a.text for a in answers}) == 1
        middle = (await sandbox.get("/metrics")).text
        heavier = await _guest_cart(client, sku, 3, "10.1.0.9")  # 1200 g: another band
        assert (await _quote(client, heavier, "10.1.0.9")).status_code == 200
        after = (await sandbox.get("/metrics")).text
    for courier in ("globex", "swiftpost"):
        assert _courier_requests(middle, courier) - _courier_requests(before, courier) == 1
        assert _courier_requests(after, courier) - _courier_requests(middle, courier) == 1


async def test_a_burst_of_quotes_from_one_client_gets_429(quote_client: ShopClient) -> None:
    client = quote_client
    admin = await client.admin()
    sku = await client.create_product(admin, stock={"WH-KYIV": 5})
    cart = await _guest_cart(client, sku, 1, "10.2.0.1")
    answers = [await _quote(client, cart, "10.2.0.1", country="DE") for _ in range(6)]
    assert [a.status_code for a in answers[:5]] == [200] * 5
    refused = answers[5]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_attempts"
    assert 1 <= int(refused.headers["Retry-After"]) <= 10
    # another client is not affected
    assert (await _quote(client, cart, "10.2.0.2", country="DE")).status_code == 200
