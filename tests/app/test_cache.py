"""The catalog cache on Redis: shared by workers, invalidated by admin writes, and optional."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import redis

from tests.app.client import ShopClient
from tests.conftest import RedisServer, ShopServer


@pytest.fixture(scope="module")
def redis_for_shop(redis_server_factory: Callable[..., RedisServer]) -> RedisServer:
    return redis_server_factory()


@pytest.fixture(scope="module")
def redis_shop(
    module_shop_factory: Callable[..., ShopServer],
    redis_for_shop: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> ShopServer:
    db = tmp_path_factory.mktemp("redis-shop") / "shop.db"
    return module_shop_factory(f"sqlite+aiosqlite:///{db}", redis_url=redis_for_shop.url, workers=2)


@pytest.fixture
async def redis_client(redis_shop: ShopServer) -> AsyncIterator[ShopClient]:
    async with httpx.AsyncClient(base_url=redis_shop.url, timeout=30) as http:
        yield ShopClient(http, redis_shop)


async def test_product_pages_are_shared_in_redis_and_invalidated_for_every_worker(
    redis_client: ShopClient, redis_for_shop: RedisServer
) -> None:
    client = redis_client
    admin = await client.admin()
    sku = await client.create_product(admin, stock={"WH-KYIV": 4}, price=2000)
    # fresh connections land on both workers; all of them read (and fill) the one cache
    for _ in range(10):
        async with httpx.AsyncClient(base_url=client.shop.url) as fresh:
            assert (await fresh.get(f"/api/products/{sku}")).json()["price"]["amount"] == 2000
    store = redis.Redis.from_url(redis_for_shop.url)
    assert store.exists(f"shop:catalog:product:{sku}")

    changed = await client.http.patch(
        f"/api/admin/products/{sku}", json={"price": 2500}, headers=client.auth(admin)
    )
    assert changed.status_code == 200
    assert not store.exists(f"shop:catalog:product:{sku}")
    for _ in range(10):
        async with httpx.AsyncClient(base_url=client.shop.url) as fresh:
            assert (await fresh.get(f"/api/products/{sku}")).json()["price"]["amount"] == 2500


async def test_search_results_follow_a_rename_at_once(redis_client: ShopClient) -> None:
    client = redis_client
    admin = await client.admin()
    sku = await client.create_product(admin, stock={"WH-KYIV": 1}, name="Zephyrine teapot")
    found = (await client.http.get("/api/products", params={"q": "zephyrine"})).json()
    assert [i["sku"] for i in found["items"]] == [sku]
    await client.http.patch(
        f"/api/admin/products/{sku}", json={"name": "Quillon teapot"}, headers=client.auth(admin)
    )
    assert (await client.http.get("/api/products", params={"q": "zephyrine"})).json()["total"] == 0
    assert (await client.http.get("/api/products", params={"q": "quillon"})).json()["items"][0][
        "sku"
    ] == sku


async def test_without_redis_the_shop_is_still_ready_and_serves(
    redis_client: ShopClient, redis_for_shop: RedisServer
) -> None:
    # Redis is optional by design (the shop serves from the database without it), so
    # readiness does not depend on it: taking it away must not take the shop out of service.
    client = redis_client
    redis_for_shop.stop()
    ready = await client.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}
    product = await client.http.get("/api/products/SKU-000005")
    assert product.status_code == 200  # served from the database, cache skipped
