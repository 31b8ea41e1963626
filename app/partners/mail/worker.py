"""The outbox worker: takes due messages, asks the quota, sends, records the result."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from app.partners import metrics
from app.partners.interfaces import MailTransport
from app.partners.mail.outbox import LeaseLost, OutboxEntry, OutboxStore
from app.partners.mail.quota import QuotaStore, SendingQuota
from app.partners.mail.transport import MailDeliveryError, build_mail_transport
from app.partners.settings import PartnersSettings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class OutboxWorker:
    def __init__(
        self,
        store: OutboxStore,
        transport: MailTransport,
        quota: SendingQuota,
        *,
        batch_size: int = 20,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
        backoff_initial_seconds: float = 5.0,
        backoff_max_seconds: float = 3600.0,
        max_attempts: int = 25,
        clock: Clock = utcnow,
        owner: str | None = None,
    ) -> None:
        self._store = store
        self._transport = transport
        self._quota = quota
        self._batch_size = batch_size
        self._lease_seconds = lease_seconds
        self._poll_seconds = poll_seconds
        self._backoff_initial = backoff_initial_seconds
        self._backoff_max = backoff_max_seconds
        self._max_attempts = max_attempts
        self._clock = clock
        self.owner = owner or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._stopping = asyncio.Event()
        metrics.declare_mail_series()

    def backoff(self, attempts: int) -> timedelta:
        """Delay before the next try after `attempts` failed ones: doubling, capped."""
        seconds = self._backoff_initial * 2 ** max(0, attempts - 1)
        return timedelta(seconds=min(self._backoff_max, seconds))

    def stop(self) -> None:
        """Finish the message in hand, then return from run() (no other message is leased)."""
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            handled = await self.run_once()
            if handled == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._poll_seconds)

    async def run_once(self) -> int:
        """Process up to `batch_size` due messages; returns how many were handled.

        Each message is leased on its own, just before it is sent, so its lease only
        has to outlast one SMTP dialogue. A lease taken for a whole batch would run
        out for the messages still waiting their turn behind a slow relay, and
        another worker would send them as well.
        """
        handled = 0
        while handled < self._batch_size and not self._stopping.is_set():
            claimed = await self._store.claim_due(
                now=self._clock(), limit=1, lease_seconds=self._lease_seconds, owner=self.owner
            )
            if not claimed:
                break
            for entry in claimed:
                try:
                    await self._process(entry)
                except LeaseLost as exc:
                    log.warning("outbox %s: %s", entry.id, exc)
                handled += 1
        await self.export_gauges()
        return handled

    async def _process(self, entry: OutboxEntry) -> None:
        now = self._clock()
        decision = await self._quota.acquire(now)
        if not decision.allowed:
            assert decision.retry_at is not None
            metrics.MAIL_HELD.inc()
            log.info(
                "outbox %s held by the %s quota until %s",
                entry.id,
                decision.blocked_by,
                decision.retry_at.isoformat(),
            )
            await self._store.reschedule(
                entry.id,
                owner=self.owner,
                next_attempt_at=decision.retry_at,
                error=None,
                count_attempt=False,
            )
            return
        error, interrupted = await self._send_to_the_end(entry)
        if error is not None:
            await self._quota.release(decision)
            metrics.MAIL_FAILED.inc()
            await self._failed(entry, error)
        else:
            metrics.MAIL_SENT.inc()
            await self._store.mark_sent(entry.id, owner=self.owner, now=self._clock())
        if interrupted:
            raise asyncio.CancelledError

    async def _send_to_the_end(self, entry: OutboxEntry) -> tuple[Exception | None, bool]:
        """Send one message; (error or None, whether the worker was cancelled meanwhile).

        A cancelled worker still waits for the server's answer (bounded by the
        transport's timeout) and records it: cutting the SMTP dialogue short
        could leave a delivered message marked unsent, to be sent again.
        """
        sending = asyncio.ensure_future(self._transport.send(entry.message))
        interrupted = False
        while not sending.done():
            try:
                await asyncio.shield(sending)
            except asyncio.CancelledError:
                interrupted = True
            except Exception:  # noqa: S110 - read below from the finished task
                pass
        if sending.cancelled():
            return MailDeliveryError("send was cancelled", permanent=False), interrupted
        failure = sending.exception()
        return (failure if isinstance(failure, Exception) else None), interrupted

    async def _failed(self, entry: OutboxEntry, exc: Exception) -> None:
        attempts = entry.attempts + 1
        error = f"{type(exc).__name__}: {exc}"
        permanent = isinstance(exc, MailDeliveryError) and exc.permanent
        if permanent or attempts >= self._max_attempts:
            log.error("outbox %s parked as dead after %d attempts: %s", entry.id, attempts, error)
            await self._store.mark_dead(entry.id, owner=self.owner, error=error, now=self._clock())
            return
        retry_at = self._clock() + self.backoff(attempts)
        log.warning(
            "outbox %s attempt %d failed (%s); next at %s",
            entry.id,
            attempts,
            error,
            retry_at.isoformat(),
        )
        await self._store.reschedule(
            entry.id, owner=self.owner, next_attempt_at=retry_at, error=error, count_attempt=True
        )

    async def export_gauges(self) -> None:
        now = self._clock()
        backlog = await self._store.backlog(now)
        metrics.OUTBOX_DEPTH.set(backlog.depth)
        metrics.OUTBOX_OLDEST_AGE.set(backlog.oldest_age_seconds)
        for window, remaining in (await self._quota.remaining(now)).items():
            metrics.MAIL_QUOTA_REMAINING.labels(window=window).set(remaining)


def build_outbox_worker(
    settings: PartnersSettings,
    *,
    store: OutboxStore,
    quota_store: QuotaStore,
    transport: MailTransport | None = None,
    clock: Clock = utcnow,
) -> OutboxWorker:
    """The worker as configured, over the given stores (the shop passes the SQL ones)."""
    quota = SendingQuota(
        quota_store,
        daily_cap=settings.mail_daily_cap,
        per_minute=settings.mail_per_minute,
        timezone=settings.mail_quota_timezone,
    )
    return OutboxWorker(
        store,
        transport or build_mail_transport(settings),
        quota,
        batch_size=settings.outbox_batch_size,
        lease_seconds=settings.outbox_lease_seconds,
        poll_seconds=settings.outbox_poll_seconds,
        backoff_initial_seconds=settings.outbox_backoff_initial_seconds,
        backoff_max_seconds=settings.outbox_backoff_max_seconds,
        max_attempts=settings.outbox_max_attempts,
        clock=clock,
    )
