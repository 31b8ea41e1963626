"""A database out of reach is a quick 503 with Retry-After, and the shop recovers by itself.

The shops here run with short DB_*_TIMEOUT_SECONDS. PostgreSQL is black-holed for
real: every process of a private cluster (this module's own, never the session's)
is stopped with SIGSTOP, so its sockets stay open and connections and queries hang
exactly as they would against a host that stopped answering; SIGCONT brings it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import sqlalchemy.exc as sa_exc

from app.db.session import DatabaseUnavailable
from app.errors import database_unavailable
from app.partners.settings import FraudSettings
from local_processes import free_port
from tests.app.client import ShopClient
from tests.conftest import PostgresServer, ShopServer, _as_postgres_user, _pg_bindir

CONNECT_TIMEOUT = 2  # libpq's minimum
STATEMENT_TIMEOUT = 1.0
POOL_TIMEOUT = 1.0
CLIENT_TIMEOUT = STATEMENT_TIMEOUT + 1.0  # app.db.session.CLIENT_TIMEOUT_MARGIN_SECONDS
SLACK = 3.0
SHORT_TIMEOUTS = {
    "DB_CONNECT_TIMEOUT_SECONDS": str(CONNECT_TIMEOUT),
    "DB_STATEMENT_TIMEOUT_SECONDS": str(STATEMENT_TIMEOUT),
    "DB_POOL_TIMEOUT_SECONDS": str(POOL_TIMEOUT),
    "DB_POOL_SIZE": "2",
    "DB_MAX_OVERFLOW": "0",
    # Only the requests of the test use the database (and the pool).
    "MAIL_WORKER_ENABLED": "false",
    "BESTSELLERS_REFRESH_SECONDS": "3600",
}
# The old code hangs; the client gives up well before that would end.
HTTP_TIMEOUT = 15.0


# --- a private PostgreSQL cluster that may be frozen ------------------------------------


class FreezablePostgres(PostgresServer):
    data_dir: Path

    def pids(self) -> list[int]:
        """The postmaster and every process it started (backends, checkpointer, ...)."""
        postmaster = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                # pid (comm) state ppid ...: comm may hold spaces, so split after ")".
                if int(stat.read_text().rpartition(")")[2].split()[1]) == postmaster:
                    children.append(int(stat.parent.name))
        return [postmaster, *children]

    @contextlib.contextmanager
    def black_holed(self) -> Iterator[None]:
        stopped: list[int] = []
        try:
            for pid in self.pids():
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
            yield
        finally:
            for pid in stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)


@pytest.fixture(scope="module")
def frozen_postgres() -> Iterator[FreezablePostgres]:
    """A PostgreSQL cluster of this module alone (as tests/conftest.py's postgres_server)."""
    bindir = _pg_bindir()
    base = Path(tempfile.mkdtemp(prefix="shop-pg-freeze-"))
    data, sockets, pwfile = base / "data", base / "sockets", base / "pwfile"
    password = secrets.token_hex(16)
    sockets.mkdir()
    pwfile.write_text(password)
    if os.geteuid() == 0:
        for path in (base, sockets, pwfile):
            shutil.chown(path, "postgres")
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
              "--auth=scram-sha-256", f"--pwfile={pwfile}", "--locale=C.UTF-8"]  # fmt: skip
    subprocess.run(_as_postgres_user(initdb), check=True, capture_output=True)
    port = free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sockets} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data)]
    subprocess.run(
        _as_postgres_user(
            [*pg_ctl, "-o", options, "-l", str(base / "postgres.log"), "-w", "start"]
        ),
        check=True,
        capture_output=True,
    )
    server = FreezablePostgres("127.0.0.1", port, password, bindir, sockets)
    server.data_dir = data
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):  # never leave it stopped
            for pid in server.pids():
                os.kill(pid, signal.SIGCONT)
        subprocess.run(
            _as_postgres_user([*pg_ctl, "-m", "immediate", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_shop(
    frozen_postgres: FreezablePostgres, module_shop_factory: Callable[..., ShopServer]
) -> ShopServer:
    return module_shop_factory(
        frozen_postgres.create_database(), workers=1, seed_products=20, extra_env=SHORT_TIMEOUTS
    )


# --- helpers --------------------------------------------------------------------------------


def log_records(shop: ShopServer, request_id: str) -> list[dict[str, object]]:
    records = []
    for line in shop.log().splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("request_id") == request_id:
                    records.append(record)
    return records


async def timed_get(
    http: httpx.AsyncClient, path: str, **kwargs: object
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await http.get(path, **kwargs)  # type: ignore[arg-type]
    return response, time.monotonic() - started


def assert_database_unavailable(response: httpx.Response, request_id: str | None = None) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"].isdigit()
    error = response.json()["error"]
    assert error["code"] == "database_unavailable"
    assert error["request_id"] == response.headers["X-Request-ID"]
    if request_id is not None:
        assert error["request_id"] == request_id
    assert "Traceback" not in response.text and "psycopg" not in response.text


async def wait_until_served(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 20
    last = None
    while time.monotonic() < deadline:
        last = await http.get(path, headers=headers)
        if last.status_code == 200:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the shop did not recover: {last and last.text}")


# --- PostgreSQL -----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.slow
async def test_black_holed_postgres_is_a_quick_503_and_the_shop_recovers(
    pg_shop: ShopServer, frozen_postgres: FreezablePostgres
) -> None:
    async with httpx.AsyncClient(base_url=pg_shop.url, timeout=HTTP_TIMEOUT) as http:
        client = ShopClient(http, pg_shop)
        auth = client.auth(await client.customer())
        assert (await http.get("/api/account", headers=auth)).status_code == 200

        with frozen_postgres.black_holed():
            # An idle pooled connection: its pre-ping gets no answer, then neither does a
            # new connection.
            request_id = f"db-down-{secrets.token_hex(4)}"
            response, elapsed = await timed_get(
                http, "/api/account", headers={**auth, "X-Request-ID": request_id}
            )
            assert_database_unavailable(response, request_id)
            assert elapsed < CLIENT_TIMEOUT + CONNECT_TIMEOUT + SLACK, elapsed

            # More requests than the pool has connections: connect timeouts and pool
            # checkout timeouts, each one a 503 in bounded time.
            answers = await asyncio.gather(
                *(timed_get(http, "/api/account", headers=auth) for _ in range(4))
            )
            for answer, took in answers:
                assert_database_unavailable(answer)
                assert took < CLIENT_TIMEOUT + CONNECT_TIMEOUT + POOL_TIMEOUT + SLACK, took

            # Readiness says so within its own 2 s bound, not after psycopg's cancel dance.
            ready, took = await timed_get(http, "/readyz")
            assert ready.status_code == 503
            assert ready.json() == {"status": "not_ready", "checks": {"database": "unavailable"}}
            assert took < 2.0 + SLACK, took

        await wait_until_served(http, "/api/account", auth)
        assert (await http.get("/readyz")).status_code == 200

    records = log_records(pg_shop, request_id)
    unavailable = [r for r in records if r.get("message") == "database unavailable"]
    assert len(unavailable) == 1, records
    assert unavailable[0]["level"] == "WARNING"
    assert not [r for r in records if r.get("message") == "unhandled error"], records


@pytest.mark.postgres
@pytest.mark.slow
async def test_statement_timeout_bounds_a_query_stuck_behind_a_lock(
    pg_shop: ShopServer,
) -> None:
    async with httpx.AsyncClient(base_url=pg_shop.url, timeout=HTTP_TIMEOUT) as http:
        client = ShopClient(http, pg_shop)
        auth = client.auth(await client.customer())
        dsn = pg_shop.database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as locker:
            locker.execute("LOCK TABLE auth_tokens IN ACCESS EXCLUSIVE MODE")
            response, elapsed = await timed_get(http, "/api/account", headers=auth)
            locker.rollback()
        assert_database_unavailable(response)
        assert elapsed < STATEMENT_TIMEOUT + SLACK, elapsed
        assert (await http.get("/api/account", headers=auth)).status_code == 200


@pytest.mark.postgres
@pytest.mark.slow
async def test_checkouts_the_database_failed_do_not_count_toward_fraud_velocity(
    frozen_postgres: FreezablePostgres, module_shop_factory: Callable[..., ShopServer]
) -> None:
    """A customer who kept trying while orders were locked (the db-slow drill) is served
    once the lock is gone, not blocked as a card tester: no charge was ever attempted."""
    limits = FraudSettings()  # the shipped per-account and per-card limits
    pg_shop = module_shop_factory(
        frozen_postgres.create_database(),
        workers=1,
        seed_products=20,
        extra_env={
            **SHORT_TIMEOUTS,
            "PARTNERS_FRAUD__MAX_ORDERS_PER_ACCOUNT": str(limits.max_orders_per_account),
            "PARTNERS_FRAUD__MAX_ORDERS_PER_PAYMENT_TOKEN": str(
                limits.max_orders_per_payment_token
            ),
        },
    )
    async with httpx.AsyncClient(base_url=pg_shop.url, timeout=HTTP_TIMEOUT) as http:
        client = ShopClient(http, pg_shop)
        sku = await client.create_product(await client.admin(), stock={"WH-KYIV": 20})
        token = await client.customer()
        assert (await client.add_to_cart(token, sku)).status_code == 200
        dsn = pg_shop.database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as locker:
            locker.execute("LOCK TABLE orders IN SHARE MODE")  # reads go on, writes wait
            # More attempts than the velocity limits of one account and one card allow.
            for _ in range(limits.max_orders_per_account + 1):
                assert_database_unavailable(await client.checkout(token))
            locker.rollback()
        placed = await client.checkout(token)
        assert placed.status_code == 201, placed.text


# --- SQLite ---------------------------------------------------------------------------------


@pytest.mark.slow
async def test_sqlite_write_lock_held_elsewhere_is_a_503_after_the_busy_timeout(
    shop_factory: Callable[..., ShopServer], tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("busy") / "shop.db"
    shop = shop_factory(
        f"sqlite+aiosqlite:///{path}", workers=1, seed_products=20, extra_env=SHORT_TIMEOUTS
    )
    async with httpx.AsyncClient(base_url=shop.url, timeout=HTTP_TIMEOUT) as http:
        client = ShopClient(http, shop)
        body = {"password": "correct horse battery", "full_name": "Busy Test"}
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            started = time.monotonic()
            response = await http.post(
                "/api/auth/register", json={**body, "email": f"busy-{secrets.token_hex(4)}@x.io"}
            )
            elapsed = time.monotonic() - started
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert_database_unavailable(response)
        assert elapsed < STATEMENT_TIMEOUT + SLACK, elapsed
        assert (await client.http.get("/readyz")).status_code == 200
        await client.register()  # 201 once the lock is gone


# --- what is and what is not "unavailable" ----------------------------------------------


def _wrapped(orig: Exception, **kwargs: bool) -> sa_exc.DBAPIError:
    base = psycopg.Error if isinstance(orig, psycopg.Error) else sqlite3.Error
    wrapped = sa_exc.DBAPIError.instance("SELECT 1", {}, orig, base, **kwargs)
    assert isinstance(wrapped, sa_exc.DBAPIError)
    return wrapped


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (sa_exc.TimeoutError("QueuePool limit of size 2 overflow 0 reached"), True),
        (DatabaseUnavailable("no turn to write"), True),
        (_wrapped(psycopg.errors.QueryCanceled("canceling statement due to timeout")), True),
        (_wrapped(psycopg.errors.ConnectionTimeout("connection timeout expired")), True),
        (_wrapped(psycopg.OperationalError("server closed the connection")), True),
        (_wrapped(psycopg.errors.AdminShutdown("terminating connection")), True),
        (_wrapped(psycopg.InterfaceError("the connection is closed")), True),
        (_wrapped(psycopg.errors.UniqueViolation("duplicate key")), False),
        (_wrapped(psycopg.errors.UndefinedTable("relation does not exist")), False),
        (_wrapped(psycopg.errors.SyntaxError("syntax error")), False),
        (_wrapped(psycopg.errors.DivisionByZero("division by zero")), False),
        (_wrapped(psycopg.errors.UniqueViolation("x"), connection_invalidated=True), True),
        (TimeoutError(), False),  # not out of the database code
        (ValueError("no"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_which_errors_mean_the_database_is_unavailable(error: Exception, unavailable: bool) -> None:
    assert database_unavailable(error) is unavailable


def test_sqlite_busy_is_unavailable_but_a_missing_table_is_a_bug(tmp_path: Path) -> None:
    holder = sqlite3.connect(tmp_path / "db", isolation_level=None)
    waiter = sqlite3.connect(tmp_path / "db", isolation_level=None, timeout=0)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as busy:
            waiter.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as missing:
            waiter.execute("SELECT * FROM no_such_table")
    finally:
        holder.close()
        waiter.close()
    assert database_unavailable(_wrapped(busy.value))
    assert not database_unavailable(_wrapped(missing.value))
    assert not database_unavailable(_wrapped(sqlite3.IntegrityError("UNIQUE constraint failed")))
