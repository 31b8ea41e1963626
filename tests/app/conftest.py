"""Fixtures of the shop suite: one served shop per backend (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from tests.app.client import ShopClient
from tests.conftest import PostgresServer, ShopServer


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def shop(
    request: pytest.FixtureRequest,
    shop_factory: Callable[..., ShopServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> ShopServer:
    """The shop served by gunicorn (two workers) on each backend."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("shop-sqlite") / "shop.db"
        return shop_factory(f"sqlite+aiosqlite:///{path}")
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    return shop_factory(postgres.create_database())


@pytest.fixture
async def client(shop: ShopServer) -> AsyncIterator[ShopClient]:
    async with httpx.AsyncClient(base_url=shop.url, timeout=30) as http:
        yield ShopClient(http, shop)
