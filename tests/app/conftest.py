"""Fixtures of the shop suite: one served shop per backend (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from tests.app.client import ShopClient
from tests.conftest import PostgresServer, ShopServer


@pytest.fixture(scope="package", params=["sqlite", "postgres"])
def shop(
    request: pytest.FixtureRequest,
    session_shop_factory: Callable[..., ShopServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ShopServer]:
    """The shop served by gunicorn (two workers) on each backend, until tests/app ends."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("shop-sqlite") / "shop.db"
        served = session_shop_factory(f"sqlite+aiosqlite:///{path}")
    else:
        postgres: PostgresServer = request.getfixturevalue("postgres_server")
        served = session_shop_factory(postgres.create_database())
    yield served
    served.stop()


@pytest.fixture
async def client(shop: ShopServer) -> AsyncIterator[ShopClient]:
    async with httpx.AsyncClient(base_url=shop.url, timeout=30) as http:
        yield ShopClient(http, shop)
