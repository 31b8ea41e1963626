"""Engines and sessions for SQLite (embedded default) and PostgreSQL.

SQLite allows one writer at a time. A transaction that reads and then writes
would fail with "database is locked" when two of them race to upgrade their
locks, so write sessions begin with BEGIN IMMEDIATE (they queue on the busy
timeout instead) while read sessions begin a plain deferred transaction and,
in WAL mode, never wait for a writer. PostgreSQL needs no such split: both
session kinds share one engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import Pool

SQLITE_BUSY_TIMEOUT_MS = 15_000


def _sqlite_engine(url: str, begin_statement: str, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver must not open transactions on its own; the "begin" hook does.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(begin_statement)

    return engine


class Database:
    """The app's engines and session factories; one per process."""

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 5) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = _sqlite_engine(url, "BEGIN", pool_size)
            self.write_engine = _sqlite_engine(url, "BEGIN IMMEDIATE", max(2, pool_size // 2))
        else:
            self.engine = create_async_engine(
                url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True
            )
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
        async with self._writer_lock, self._write() as session, session.begin():
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.write_engine is not self.engine:
            await self.write_engine.dispose()
