"""The SQL outbox, quota and risk history: on a SQLite file and on a real PostgreSQL.

"Persistent" is taken literally: the worker's engine is disposed between runs
(a process restart) and a new one reads the same database.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from partners_support import SmtpSink
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.db.base import Base
from app.partners.fraud import RiskDecision, RiskEngine, RiskRequest
from app.partners.fraud.sql import SqlRiskHistory
from app.partners.interfaces import MailMessage
from app.partners.mail import LeaseLost, OutboxState, OutboxWorker, SendingQuota, SmtpMailTransport
from app.partners.mail.sql import SqlOutboxStore, SqlQuotaStore
from app.partners.settings import FraudSettings

T0 = datetime(2026, 11, 23, 23, 58, 10, tzinfo=UTC)

EngineFactory = Callable[[], AsyncEngine]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def engine_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[EngineFactory]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'partners.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    engines: list[AsyncEngine] = []

    def factory() -> AsyncEngine:
        engine = create_async_engine(url)
        engines.append(engine)
        return engine

    first = factory()
    async with first.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield factory
    for engine in engines:
        await engine.dispose()


def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def transport_for(sink: SmtpSink) -> SmtpMailTransport:
    return SmtpMailTransport(host=sink.host, port=sink.port, sender="orders@shop.example")


def worker(engine: AsyncEngine, sink: SmtpSink, clock: FakeClock, **quota: int) -> OutboxWorker:
    made = sessions(engine)
    return OutboxWorker(
        SqlOutboxStore(made),
        transport_for(sink),
        SendingQuota(
            SqlQuotaStore(made),
            daily_cap=quota.get("daily_cap", 1000),
            per_minute=quota.get("per_minute", 1000),
        ),
        clock=clock,
    )


def mail(n: int) -> MailMessage:
    return MailMessage(to=f"buyer{n}@example.com", subject=f"Order {n}", body_text="Thanks.")


async def test_enqueue_is_idempotent_and_fixes_the_message_id(engine_factory: EngineFactory):
    store = SqlOutboxStore(sessions(engine_factory()))
    first = await store.enqueue(mail(1), dedupe_key="order:1:confirmation", now=T0)
    again = await store.enqueue(mail(1), dedupe_key="order:1:confirmation", now=T0)
    assert first.id == again.id
    assert (
        first.message.headers["Message-ID"]
        == f"<outbox-{first.id}-order-1-confirmation@shop.example>"
    )
    assert len(await store.entries()) == 1


async def test_outbox_survives_a_process_restart_nothing_lost_nothing_twice(
    engine_factory: EngineFactory, smtp_sink: SmtpSink
):
    clock = FakeClock(T0)
    store = SqlOutboxStore(sessions(engine_factory()))
    for n in range(6):
        await store.enqueue(mail(n), dedupe_key=f"order:{n}", now=T0)

    first_engine = engine_factory()
    first = worker(first_engine, smtp_sink, clock)
    # The first process dies after leasing the batch and sending two messages.
    claimed = await first._store.claim_due(now=T0, limit=10, lease_seconds=60, owner=first.owner)
    for entry in claimed[:2]:
        await first._transport.send(entry.message)
        await first._store.mark_sent(entry.id, owner=first.owner, now=T0)
    await first_engine.dispose()

    clock.now = T0 + timedelta(seconds=30)
    second = worker(engine_factory(), smtp_sink, clock)
    assert await second.run_once() == 0  # the dead process's leases are still live
    clock.now = T0 + timedelta(seconds=61)
    assert await second.run_once() == 4
    ids = Counter(m.message_id for m in smtp_sink.messages)
    assert len(ids) == 6 and set(ids.values()) == {1}
    assert {e.state for e in await store.entries()} == {OutboxState.SENT}


async def test_two_workers_at_once_send_each_message_once(
    engine_factory: EngineFactory, smtp_sink: SmtpSink
):
    clock = FakeClock(T0)
    store = SqlOutboxStore(sessions(engine_factory()))
    for n in range(12):
        await store.enqueue(mail(n), dedupe_key=f"order:{n}", now=T0)
    workers = [worker(engine_factory(), smtp_sink, clock) for _ in range(2)]
    for _ in range(3):
        await asyncio.gather(*(w.run_once() for w in workers))
    ids = Counter(m.message_id for m in smtp_sink.messages)
    assert len(ids) == 12 and set(ids.values()) == {1}


async def test_a_lost_lease_cannot_be_completed(engine_factory: EngineFactory):
    store = SqlOutboxStore(sessions(engine_factory()))
    entry = await store.enqueue(mail(1), dedupe_key="order:1", now=T0)
    await store.claim_due(now=T0, limit=1, lease_seconds=10, owner="slow")
    await store.claim_due(now=T0 + timedelta(seconds=11), limit=1, lease_seconds=10, owner="fast")
    with pytest.raises(LeaseLost):
        await store.mark_sent(entry.id, owner="slow", now=T0)
    await store.mark_sent(entry.id, owner="fast", now=T0)


async def test_shared_quota_holds_mail_and_releases_it_when_the_day_turns(
    engine_factory: EngineFactory, smtp_sink: SmtpSink
):
    clock = FakeClock(T0)
    store = SqlOutboxStore(sessions(engine_factory()))
    for n in range(5):
        await store.enqueue(mail(n), dedupe_key=f"order:{n}", now=T0)
    # Two workers, one cap: the count lives in the database, not in either process.
    a = worker(engine_factory(), smtp_sink, clock, daily_cap=3)
    b = worker(engine_factory(), smtp_sink, clock, daily_cap=3)
    await a.run_once()
    await b.run_once()
    assert len(smtp_sink.messages) == 3
    held = [e for e in await store.entries() if e.state == OutboxState.PENDING]
    assert {e.next_attempt_at for e in held} == {datetime(2026, 11, 24, tzinfo=UTC)}
    clock.now = datetime(2026, 11, 24, 0, 0, 5, tzinfo=UTC)
    await b.run_once()
    assert len(smtp_sink.messages) == 5


async def test_quota_store_is_all_or_nothing(engine_factory: EngineFactory):
    quota = SendingQuota(SqlQuotaStore(sessions(engine_factory())), daily_cap=5, per_minute=1)
    assert (await quota.acquire(T0)).allowed
    blocked = await quota.acquire(T0)
    assert blocked.blocked_by == "minute"
    # The refused message did not use up a slot of the day either.
    assert await quota.remaining(T0) == {"day": 4, "minute": 0}


def _established_customer(n: int) -> RiskRequest:
    """A 300-day-old account paying 30.00 at home: no rule fires on its own."""
    return RiskRequest(
        customer_reference=f"cust-{n}",
        account_created_at=T0 - timedelta(days=300),
        amount_minor=3000,
        currency="EUR",
        payment_token=f"tok_{n}",
        ip_address=f"198.51.100.{n}",
        billing_country="DE",
        shipping_country="DE",
    )


async def test_risk_history_in_sql_feeds_the_velocity_and_amount_rules(
    engine_factory: EngineFactory,
):
    engine = RiskEngine(FraudSettings(), SqlRiskHistory(sessions(engine_factory())))
    base = _established_customer(9)
    for n in range(3):
        await engine.assess(base, now=T0 - timedelta(days=10 + n))
    unusual = await engine.assess(RiskRequest(**{**base.__dict__, "amount_minor": 90_000}), now=T0)
    assert unusual.decision == RiskDecision.CHALLENGE
    assert unusual.reason_codes == ["amount_unusual"]
    for n in range(3):
        result = await engine.assess(base, now=T0 + timedelta(minutes=n + 1))
    assert result.reason_codes == ["velocity_payment_token"]


async def test_risk_history_in_sql_counts_one_attempt_assessed_twice_once(
    engine_factory: EngineFactory,
):
    history = SqlRiskHistory(sessions(engine_factory()))
    engine = RiskEngine(FraudSettings(max_orders_per_payment_token=2), history)
    base = _established_customer(7)
    await engine.assess(replace(base, order_reference="a"), now=T0)
    again = replace(base, order_reference="b")
    first = await engine.assess(again, now=T0 + timedelta(minutes=1))
    second = await engine.assess(again, now=T0 + timedelta(minutes=2))  # the step-up retry
    assert first.reason_codes == [] and second.reason_codes == []
    third = await engine.assess(replace(base, order_reference="c"), now=T0 + timedelta(minutes=3))
    assert third.reason_codes == ["velocity_payment_token"]


async def test_risk_history_in_sql_forgets_a_withdrawn_attempt_for_velocity(
    engine_factory: EngineFactory,
):
    history = SqlRiskHistory(sessions(engine_factory()))
    engine = RiskEngine(FraudSettings(max_orders_per_payment_token=2), history)
    base = _established_customer(5)
    await engine.assess(replace(base, order_reference="a"), now=T0)
    await engine.assess(replace(base, order_reference="b"), now=T0 + timedelta(minutes=1))
    await engine.withdraw("b")
    await engine.withdraw("b")  # twice: nothing more happens
    after = await engine.assess(replace(base, order_reference="c"), now=T0 + timedelta(minutes=2))
    assert after.reason_codes == []
    last = await engine.assess(replace(base, order_reference="d"), now=T0 + timedelta(minutes=3))
    assert last.reason_codes == ["velocity_payment_token"]
