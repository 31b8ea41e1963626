"""Exactly once behind a slow relay: concurrent outbox workers, real SMTP sink, real clock.

The finding this guards: a worker that leased a whole batch for `lease_seconds`
and then sent it message after message let the leases of the later messages
expire while they waited their turn; another worker took them and both sent
them. Here the sink's `latency_ms` knob makes one send short against the lease
but a whole batch long against it, and several workers share one store: each
over its own engine (separate processes) on a SQLite file and on PostgreSQL,
and over the in-memory store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from partners_support import SmtpSink, metric
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.db.base import Base
from app.db.session import Database
from app.partners.interfaces import MailMessage
from app.partners.mail import (
    InMemoryOutboxStore,
    InMemoryQuotaStore,
    OutboxEntry,
    OutboxState,
    OutboxStore,
    OutboxWorker,
    QuotaStore,
    SendingQuota,
    SmtpMailTransport,
)
from app.partners.mail.sql import SqlOutboxStore, SqlQuotaStore

MESSAGES = 16
WORKERS = 3
LATENCY_MS = 400  # per message, at the sink's DATA stage
# Outlasts one send several times over (a loaded CI machine stretched 200 ms sends past a
# 1 s lease), but not a batch of MESSAGES sends.
LEASE_SECONDS = 2.5
DRAIN_DEADLINE_SECONDS = 30.0


@dataclass
class Backend:
    """Stores as one process sees them; `connect()` is another process (its own engine)."""

    connect: Callable[[], Awaitable[tuple[OutboxStore, QuotaStore]]]
    entries: Callable[[], Awaitable[list[OutboxEntry]]]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "memory":
        outbox, quota = InMemoryOutboxStore(), InMemoryQuotaStore()

        async def connect_memory() -> tuple[OutboxStore, QuotaStore]:
            return outbox, quota

        async def memory_entries() -> list[OutboxEntry]:
            return outbox.entries

        yield Backend(connect_memory, memory_entries)
        return

    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    databases: list[Database] = []

    async def connect_sql() -> tuple[OutboxStore, QuotaStore]:
        db = Database(url)
        databases.append(db)
        # What the shop gives the stores (app/wiring.py partner_sessions): the write engine.
        sessions = async_sessionmaker(db.write_engine, expire_on_commit=False)
        return SqlOutboxStore(sessions), SqlQuotaStore(sessions)

    first, _ = await connect_sql()
    async with databases[0].write_engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    assert isinstance(first, SqlOutboxStore)
    try:
        yield Backend(connect_sql, first.entries)
    finally:
        for db in databases:
            await db.dispose()


@dataclass
class TimedTransport:
    """The real SMTP transport, recording who sent what and how long each send took."""

    inner: SmtpMailTransport
    owner: str = ""
    log: list[tuple[str, str, float]] = field(default_factory=list)

    async def send(self, message: MailMessage) -> None:
        started = time.monotonic()
        try:
            await self.inner.send(message)
        finally:
            self.log.append((self.owner, message.headers["Message-ID"], time.monotonic() - started))


def order_mail(n: int) -> MailMessage:
    return MailMessage(to=f"buyer{n}@example.com", subject=f"Order {n}", body_text="Thanks.")


async def wait_for(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DRAIN_DEADLINE_SECONDS
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.02)


async def test_a_slow_relay_never_gets_a_message_twice_from_concurrent_workers(
    backend: Backend, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
):
    # The premise: the batch (one worker, every message) takes several leases to send.
    assert MESSAGES * LATENCY_MS / 1000 > 2 * LEASE_SECONDS
    caplog.set_level(logging.WARNING, logger="app.partners.mail.worker")
    now = datetime.now(UTC)
    producer, _ = await backend.connect()
    expected = set()
    for n in range(MESSAGES):
        entry = await producer.enqueue(order_mail(n), dedupe_key=f"order:{n}:confirmation", now=now)
        expected.add(entry.message.headers["Message-ID"])
    await smtp_sink.set_faults(latency_ms=LATENCY_MS)
    sent_before = metric("shop_mail_sent_total")

    log: list[tuple[str, str, float]] = []
    workers: list[OutboxWorker] = []
    for n in range(WORKERS):
        store, quota_store = await backend.connect()
        transport = TimedTransport(
            SmtpMailTransport(
                host=smtp_sink.host, port=smtp_sink.port, sender="orders@shop.example"
            ),
            log=log,
        )
        worker = OutboxWorker(
            store,
            transport,  # type: ignore[arg-type]
            SendingQuota(quota_store, daily_cap=1000, per_minute=1000),
            lease_seconds=LEASE_SECONDS,
            poll_seconds=0.02,
            backoff_initial_seconds=60,  # a failed send would not come back within the test
            owner=f"worker-{n}",
        )
        transport.owner = worker.owner
        workers.append(worker)

    async def leased_by(owner: str) -> bool:
        return any(e.lease_owner == owner for e in await backend.entries())

    async def drained() -> bool:
        return all(e.state != OutboxState.PENDING for e in await backend.entries())

    # The first worker starts on a full queue (it takes what its batch may take); the
    # others join while it is busy, and keep polling for anything whose lease has run out.
    tasks = [asyncio.create_task(workers[0].run())]
    try:
        await wait_for(lambda: leased_by(workers[0].owner), "the first worker holds a lease")
        tasks += [asyncio.create_task(w.run()) for w in workers[1:]]
        await wait_for(drained, "the outbox is drained")
        await asyncio.sleep(LATENCY_MS / 1000 * 2)  # a stray duplicate send would land now
    finally:
        for worker in workers:
            worker.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=DRAIN_DEADLINE_SECONDS)

    # One send is shorter than the lease (else this test proves nothing).
    assert max(seconds for _, _, seconds in log) < LEASE_SECONDS
    listing = (await smtp_sink.admin.get("/messages")).json()
    received = Counter(item["message_id"] for item in listing["items"])
    assert set(received) == expected
    assert {mid: count for mid, count in received.items() if count != 1} == {}
    assert len(log) == MESSAGES  # no second SMTP dialogue for any message, not even a refused one
    entries = await backend.entries()
    assert [(e.state, e.attempts) for e in entries] == [(OutboxState.SENT, 1)] * MESSAGES
    assert all(e.lease_owner is None for e in entries)
    assert metric("shop_mail_sent_total") == sent_before + MESSAGES
    assert [r.getMessage() for r in caplog.records if "not leased by" in r.getMessage()] == []
    # The slow relay's backlog was shared, not hoarded by the first worker.
    assert len({owner for owner, _, _ in log}) > 1
