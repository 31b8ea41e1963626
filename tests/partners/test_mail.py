"""Order mail: SMTP transport, sending quota and the outbox worker, against the real SMTP sink."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from partners_support import SmtpSink, metric

from app.partners.interfaces import MailMessage
from app.partners.mail import (
    InMemoryOutboxStore,
    InMemoryQuotaStore,
    OutboxState,
    OutboxWorker,
    SendingQuota,
    SmtpMailTransport,
)
from app.partners.mail.quota import windows_at

T0 = datetime(2026, 11, 23, 23, 58, 10, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def transport_for(sink: SmtpSink) -> SmtpMailTransport:
    return SmtpMailTransport(
        host=sink.host, port=sink.port, sender="orders@shop.example", timeout_seconds=5
    )


def order_mail(n: int, to: str = "buyer@example.com") -> MailMessage:
    return MailMessage(to=to, subject=f"Order {n} confirmed", body_text=f"Thank you for order {n}.")


def worker_for(
    store: InMemoryOutboxStore,
    transport: SmtpMailTransport,
    clock: FakeClock,
    *,
    daily_cap: int = 1000,
    per_minute: int = 1000,
    quota_store: InMemoryQuotaStore | None = None,
    **options: object,
) -> OutboxWorker:
    quota = SendingQuota(
        quota_store or InMemoryQuotaStore(), daily_cap=daily_cap, per_minute=per_minute
    )
    return OutboxWorker(store, transport, quota, clock=clock, **options)  # type: ignore[arg-type]


def message_ids(sink: SmtpSink) -> Counter[str]:
    return Counter(m.message_id for m in sink.messages)


# --- transport and sink -----------------------------------------------------


async def test_transport_delivers_over_smtp_and_the_sink_keeps_it(smtp_sink: SmtpSink):
    message = MailMessage(
        to="buyer@example.com",
        subject="Order 7 confirmed",
        body_text="Thank you.",
        headers={"Message-ID": "<order-7@shop.example>"},
    )
    await transport_for(smtp_sink).send(message)
    [received] = smtp_sink.messages
    assert received.rcpt_tos == ("buyer@example.com",)
    assert received.mail_from == "orders@shop.example"
    assert received.message_id == "<order-7@shop.example>"
    assert received.body_text().strip() == "Thank you."

    listing = (await smtp_sink.admin.get("/messages", params={"to": "buyer@example.com"})).json()
    assert listing["total"] == 1 and listing["items"][0]["subject"] == "Order 7 confirmed"
    one = (await smtp_sink.admin.get(f"/messages/{received.id}")).json()
    assert "X-Mail-Kind: order_confirmation" in one["raw"]
    assert (await smtp_sink.admin.delete("/messages")).json() == {"deleted": 1}
    assert smtp_sink.messages == []
    assert (await smtp_sink.admin.get("/messages/999")).status_code == 404


# --- quota (pure window arithmetic and counting) ----------------------------


def test_windows_close_at_the_next_minute_and_the_next_local_midnight():
    day, minute = windows_at(T0, daily_cap=10, per_minute=2, timezone="UTC")
    assert day.key == "day:2026-11-23" and day.ends_at == datetime(2026, 11, 24, tzinfo=UTC)
    assert minute.key == "minute:2026-11-23T23:58"
    assert minute.ends_at == datetime(2026, 11, 23, 23, 59, tzinfo=UTC)
    kyiv_day, _ = windows_at(T0, daily_cap=10, per_minute=2, timezone="Europe/Kyiv")
    assert kyiv_day.key == "day:2026-11-24"  # 01:58 in Kyiv
    assert kyiv_day.ends_at == datetime(2026, 11, 24, 22, 0, tzinfo=UTC)


def test_a_day_with_a_dst_change_still_ends_at_local_midnight():
    spring = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)
    day, _ = windows_at(spring, daily_cap=1, per_minute=1, timezone="Europe/Berlin")
    assert day.ends_at.astimezone(UTC) == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)


async def test_quota_blocks_at_the_cap_and_says_when_it_reopens():
    quota = SendingQuota(InMemoryQuotaStore(), daily_cap=3, per_minute=2)
    assert (await quota.acquire(T0)).allowed
    assert (await quota.acquire(T0)).allowed
    blocked = await quota.acquire(T0)
    assert not blocked.allowed and blocked.blocked_by == "minute"
    assert blocked.retry_at == datetime(2026, 11, 23, 23, 59, tzinfo=UTC)
    assert await quota.remaining(T0) == {"day": 1, "minute": 0}

    next_minute = T0 + timedelta(minutes=1)
    third = await quota.acquire(next_minute)
    assert third.allowed
    blocked = await quota.acquire(next_minute)
    assert blocked.blocked_by == "day"
    assert blocked.retry_at == datetime(2026, 11, 24, tzinfo=UTC)

    await quota.release(third)  # not delivered after all: the slot comes back
    assert (await quota.acquire(next_minute)).allowed


def test_quota_refuses_nonsense_limits():
    with pytest.raises(ValueError, match="at least 1"):
        SendingQuota(InMemoryQuotaStore(), daily_cap=0, per_minute=1)


# --- outbox worker ----------------------------------------------------------


async def test_enqueue_is_idempotent_on_its_dedupe_key():
    store = InMemoryOutboxStore()
    first = await store.enqueue(order_mail(1), dedupe_key="order:1:confirmation", now=T0)
    again = await store.enqueue(order_mail(1), dedupe_key="order:1:confirmation", now=T0)
    assert first.id == again.id and len(store.entries) == 1
    assert first.message.headers["Message-ID"].startswith("<outbox-1-")


async def test_daily_cap_holds_mail_back_and_releases_it_when_the_window_reopens(
    smtp_sink: SmtpSink,
):
    clock = FakeClock(T0)
    store = InMemoryOutboxStore()
    for n in range(5):
        await store.enqueue(order_mail(n), dedupe_key=f"order:{n}", now=T0)
    worker = worker_for(store, transport_for(smtp_sink), clock, daily_cap=3, per_minute=2)
    held_before = metric("shop_mail_held_total")

    await worker.run_once()  # 23:58 - the minute allows two
    assert len(smtp_sink.messages) == 2
    assert metric("shop_mail_held_total") == held_before + 3
    assert metric("shop_mail_quota_remaining", window="minute") == 0
    assert metric("shop_mail_quota_remaining", window="day") == 1
    assert metric("shop_outbox_depth") == 3

    clock.advance(seconds=30)  # same minute: nothing is due, nothing is sent
    await worker.run_once()
    assert len(smtp_sink.messages) == 2

    clock.now = datetime(2026, 11, 23, 23, 59, tzinfo=UTC)  # minute reopens, day cap reached
    await worker.run_once()
    assert len(smtp_sink.messages) == 3
    held = [e for e in store.entries if e.state == OutboxState.PENDING]
    assert {e.next_attempt_at for e in held} == {datetime(2026, 11, 24, tzinfo=UTC)}
    assert all(e.attempts == 0 for e in held)  # holding is not a failed attempt

    clock.now = datetime(2026, 11, 24, 0, 0, 1, tzinfo=UTC)  # a new day
    await worker.run_once()
    assert len(smtp_sink.messages) == 5
    assert all(count == 1 for count in message_ids(smtp_sink).values())
    assert all(e.state == OutboxState.SENT for e in store.entries)
    assert metric("shop_outbox_depth") == 0


async def test_a_failed_send_is_retried_with_backoff_and_the_quota_slot_returned(
    smtp_sink: SmtpSink,
):
    clock = FakeClock(T0)
    store = InMemoryOutboxStore()
    await store.enqueue(order_mail(1), dedupe_key="order:1", now=T0)
    worker = worker_for(
        store, transport_for(smtp_sink), clock, per_minute=5, backoff_initial_seconds=5
    )
    failed_before = metric("shop_mail_failed_total")
    await smtp_sink.set_faults(error_rate=100)
    await worker.run_once()
    [entry] = store.entries
    assert entry.state == OutboxState.PENDING and entry.attempts == 1
    assert entry.next_attempt_at == T0 + timedelta(seconds=5)
    assert "451" in (entry.last_error or "")
    assert metric("shop_mail_failed_total") == failed_before + 1
    assert metric("shop_mail_quota_remaining", window="minute") == 5

    await smtp_sink.set_faults(error_rate=0)
    await worker.run_once()  # not due yet
    assert smtp_sink.messages == []
    clock.advance(seconds=5)
    await worker.run_once()
    assert len(smtp_sink.messages) == 1
    assert store.entries[0].state == OutboxState.SENT


def test_backoff_doubles_and_is_capped():
    worker = worker_for(
        InMemoryOutboxStore(),
        SmtpMailTransport(host="127.0.0.1", port=1, sender="a@b.c"),
        FakeClock(T0),
        backoff_initial_seconds=5,
        backoff_max_seconds=60,
    )
    assert [worker.backoff(n).total_seconds() for n in (1, 2, 3, 4, 5, 6)] == [
        5,
        10,
        20,
        40,
        60,
        60,
    ]


async def test_a_permanent_refusal_parks_the_message_as_dead_not_lost(smtp_sink: SmtpSink):
    clock = FakeClock(T0)
    store = InMemoryOutboxStore()
    await store.enqueue(order_mail(1, to="nobody@shop.invalid"), dedupe_key="order:1", now=T0)
    worker = worker_for(store, transport_for(smtp_sink), clock)
    await worker.run_once()
    [entry] = store.entries
    assert entry.state == OutboxState.DEAD
    assert "550" in (entry.last_error or "")
    assert smtp_sink.messages == []


async def test_after_max_attempts_a_message_is_parked_as_dead(smtp_sink: SmtpSink):
    clock = FakeClock(T0)
    store = InMemoryOutboxStore()
    await store.enqueue(order_mail(1), dedupe_key="order:1", now=T0)
    worker = worker_for(store, transport_for(smtp_sink), clock, max_attempts=2)
    await smtp_sink.set_faults(outage=True)
    await worker.run_once()
    clock.advance(hours=1)
    await worker.run_once()
    [entry] = store.entries
    assert entry.state == OutboxState.DEAD and entry.attempts == 2
    assert "421" in (entry.last_error or "")


class StopAfter:
    """A transport that asks the worker to stop after `n` messages (a deploy mid-batch)."""

    def __init__(self, inner: SmtpMailTransport, n: int) -> None:
        self.inner = inner
        self.n = n
        self.sent = 0
        self.worker: OutboxWorker | None = None

    async def send(self, message: MailMessage) -> None:
        await self.inner.send(message)
        self.sent += 1
        if self.sent == self.n and self.worker is not None:
            self.worker.stop()


async def test_outbox_survives_a_worker_restart_with_nothing_lost_or_sent_twice(
    smtp_sink: SmtpSink,
):
    clock = FakeClock(T0)
    store = InMemoryOutboxStore()
    for n in range(10):
        await store.enqueue(order_mail(n), dedupe_key=f"order:{n}", now=T0)

    stopping = StopAfter(transport_for(smtp_sink), n=4)
    first = worker_for(store, stopping, clock)  # type: ignore[arg-type]
    stopping.worker = first
    await first.run()  # returns after the 4th message: the rest were never leased
    assert len(smtp_sink.messages) == 4
    pending = [e for e in store.entries if e.state == OutboxState.PENDING]
    assert len(pending) == 6 and all(e.lease_owner is None for e in pending)

    second = worker_for(store, transport_for(smtp_sink), clock)
    await second.run_once()
    assert len(smtp_sink.messages) == 10
    assert len(message_ids(smtp_sink)) == 10
    assert all(count == 1 for count in message_ids(smtp_sink).values())
    assert all(e.state == OutboxState.SENT for e in store.entries)


async def test_leases_of_a_worker_that_died_expire_and_another_worker_sends_once(
    smtp_sink: SmtpSink,
):
    clock = FakeClock(T0)
    store = InMemoryOutboxStore()
    for n in range(3):
        await store.enqueue(order_mail(n), dedupe_key=f"order:{n}", now=T0)
    # A worker leased everything, then died before sending.
    await store.claim_due(now=T0, limit=10, lease_seconds=60, owner="dead-worker")

    survivor = worker_for(store, transport_for(smtp_sink), clock, lease_seconds=60)
    assert await survivor.run_once() == 0  # the leases are still live
    clock.advance(seconds=61)
    assert await survivor.run_once() == 3
    assert sorted(message_ids(smtp_sink).values()) == [1, 1, 1]
    assert all(e.state == OutboxState.SENT for e in store.entries)


async def test_a_worker_cancelled_mid_send_records_the_message_it_had_in_hand(
    smtp_sink: SmtpSink,
):
    clock = FakeClock(T0)
    store = InMemoryOutboxStore()
    for n in range(5):
        await store.enqueue(order_mail(n), dedupe_key=f"order:{n}", now=T0)
    await smtp_sink.set_faults(latency_ms=300)
    worker = worker_for(store, transport_for(smtp_sink), clock)
    task = asyncio.create_task(worker.run())
    for _ in range(500):  # bounded: wait until the batch is leased
        if any(e.lease_owner for e in store.entries):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # the first message is in the SMTP dialogue now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    sent = [e for e in store.entries if e.state == OutboxState.SENT]
    assert len(sent) == len(smtp_sink.messages) >= 1

    await smtp_sink.set_faults(latency_ms=0)
    clock.advance(seconds=120)  # the dead worker's leases expire
    await worker_for(store, transport_for(smtp_sink), clock).run_once()
    assert len(smtp_sink.messages) == 5
    assert all(count == 1 for count in message_ids(smtp_sink).values())
