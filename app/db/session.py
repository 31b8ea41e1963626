"""Engines and sessions for SQLite (embedded default) and PostgreSQL.

SQLite allows one writer at a time. A transaction that reads and then writes
would fail with "database is locked" when two of them race to upgrade their
locks, so write sessions begin with BEGIN IMMEDIATE (they queue on the busy
timeout instead) while read sessions begin a plain deferred transaction and,
in WAL mode, never wait for a writer. PostgreSQL needs no such split: both
session kinds share one engine.

Every wait for the database is bounded (`DatabaseTimeouts`, from DB_*_TIMEOUT_SECONDS):
connecting (libpq connect_timeout), each statement (PostgreSQL statement_timeout; SQLite
busy timeout), a free pooled connection (pool timeout) and, on SQLite, the process's
write turn. A server that stops answering altogether cannot enforce its own
statement_timeout, so the client gives up too, a little later (`_BoundedAsyncConnection`),
and drops that connection. The errors that result are what app/errors.py answers 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import pq, waiting
from psycopg.errors import _WaitTimeout
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import Pool

from app.settings import Settings, get_settings

# How much longer than statement_timeout the client waits for a server that says nothing:
# a live server cancels the statement itself first (a clean error, the connection stays).
CLIENT_TIMEOUT_MARGIN_SECONDS = 1.0


class DatabaseUnavailable(Exception):
    """The database could not serve this in time (raised here, e.g. the SQLite write turn)."""


class DatabaseNoAnswer(psycopg.OperationalError):
    """The PostgreSQL server did not answer in time; the connection was closed."""


@dataclass(frozen=True)
class DatabaseTimeouts:
    connect_seconds: int = 3
    statement_seconds: float = 5.0
    pool_seconds: float = 3.0

    @classmethod
    def from_settings(cls, settings: Settings) -> DatabaseTimeouts:
        return cls(
            connect_seconds=settings.db_connect_timeout_seconds,
            statement_seconds=settings.db_statement_timeout_seconds,
            pool_seconds=settings.db_pool_timeout_seconds,
        )

    @property
    def client_seconds(self) -> float:
        """How long the client waits for any one answer of the server."""
        return self.statement_seconds + CLIENT_TIMEOUT_MARGIN_SECONDS


class _BoundedAsyncConnection(psycopg.AsyncConnection):
    """A psycopg connection whose every wait for the server is bounded.

    psycopg waits for a query's result without limit and, when the waiting task is
    cancelled, sends the server a cancel request and waits up to 10 s more for it. A
    server that does not answer answers neither, so here both close the connection:
    SQLAlchemy sees a closed connection, invalidates it and the pool opens a new one.
    """

    operation_timeout: float | None = None

    async def wait(
        self,
        gen: Any,
        interval: float = 0.1,
        timeout: float | None = None,  # noqa: ASYNC109 - psycopg's signature, overridden
    ) -> Any:
        bound = self.operation_timeout if timeout is None else timeout
        try:
            return await waiting.wait_async(
                gen, self.pgconn.socket, interval=interval, timeout=bound
            )
        except _WaitTimeout:
            if timeout is not None:  # psycopg's own bounded wait: its error, its handling
                raise
            self.pgconn.finish()
            raise DatabaseNoAnswer(
                f"the database server did not answer within {bound:g} s"
            ) from None
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            if self.pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
                self.pgconn.finish()  # mid-query, state unknown: abandon, don't wait
            raise


def _bounded_connect(operation_timeout: float) -> Callable[..., Awaitable[psycopg.AsyncConnection]]:
    async def connect(*args: Any, **kwargs: Any) -> psycopg.AsyncConnection:
        conn = await _BoundedAsyncConnection.connect(*args, **kwargs)
        conn.operation_timeout = operation_timeout
        return conn

    return connect


def _postgres_engine(
    url: str, timeouts: DatabaseTimeouts, pool_size: int, max_overflow: int
) -> AsyncEngine:
    statement_ms = max(1, round(timeouts.statement_seconds * 1000))
    options = " ".join(
        part
        for part in (make_url(url).query.get("options"), f"-c statement_timeout={statement_ms}")
        if part
    )
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=timeouts.pool_seconds,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": timeouts.connect_seconds,
            "options": options,
            "async_creator_fn": _bounded_connect(timeouts.client_seconds),
        },
    )


def _sqlite_engine(
    url: str, begin_statement: str, pool_size: int, timeouts: DatabaseTimeouts
) -> AsyncEngine:
    engine = create_async_engine(
        url, pool_size=pool_size, max_overflow=0, pool_timeout=timeouts.pool_seconds
    )
    busy_timeout_ms = max(1, round(timeouts.statement_seconds * 1000))

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver must not open transactions on its own; the "begin" hook does.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(begin_statement)

    return engine


class Database:
    """The app's engines and session factories; one per process.

    `timeouts` defaults to the DB_*_TIMEOUT_SECONDS settings of the environment.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int = 5,
        timeouts: DatabaseTimeouts | None = None,
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.timeouts = timeouts or DatabaseTimeouts.from_settings(get_settings())
        if self.is_sqlite:
            self.engine = _sqlite_engine(url, "BEGIN", pool_size, self.timeouts)
            self.write_engine = _sqlite_engine(
                url, "BEGIN IMMEDIATE", max(2, pool_size // 2), self.timeouts
            )
        else:
            self.engine = _postgres_engine(url, self.timeouts, pool_size, max_overflow)
            self.write_engine = self.engine
        self._writer_lock = asyncio.Lock() if self.is_sqlite else None
        self._read = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write = async_sessionmaker(self.write_engine, expire_on_commit=False)

    @property
    def pools(self) -> list[Pool]:
        engines = {id(e): e for e in (self.engine, self.write_engine)}
        return [e.sync_engine.pool for e in engines.values()]

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on any error."""
        if self._writer_lock is None:
            async with self._write() as session, session.begin():
                yield session
            return
        # SQLite: one writer per process at a time. Waiting here is a fair queue; waiting in
        # SQLite's busy handler is a sleep-and-retry with back-off that wastes up to 100 ms.
        # The wait is a pool checkout in all but name, and bounded like one.
        try:
            async with asyncio.timeout(self.timeouts.pool_seconds):
                await self._writer_lock.acquire()
        except TimeoutError:
            raise DatabaseUnavailable(
                f"no turn to write within {self.timeouts.pool_seconds:g} s"
            ) from None
        try:
            async with self._write() as session, session.begin():
                yield session
        finally:
            self._writer_lock.release()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.write_engine is not self.engine:
            await self.write_engine.dispose()
