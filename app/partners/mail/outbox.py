"""The mail outbox: messages wait here until a worker has handed them to SMTP.

Semantics:
- never lost: a message is written to the store (in the same transaction as
  the order change) before anyone tries to send it, and leaves the
  "pending" state only as "sent" or, after `max_attempts` failures or a
  permanent SMTP refusal, as "dead" (kept, visible, re-queueable; never dropped);
- never sent twice: a worker leases one message at a time, just before it
  sends it, for `lease_seconds` (longer than one SMTP dialogue can take), so
  no lease runs out while its message waits behind others; a second worker
  does not see a leased message, and a lease held by a worker that died
  expires so another picks the message up. A stopping worker finishes the
  message in hand (it holds no other lease). Each message carries a
  Message-ID fixed at enqueue time, so even the one unavoidable gap (a crash
  after the server said 250 but before "sent" was written) repeats the same
  Message-ID, which receivers deduplicate;
- enqueueing is idempotent on `dedupe_key` (e.g. "order:42:confirmation").

`OutboxStore` is the protocol; `InMemoryOutboxStore` implements it for tests
and the SQL store (app/partners/mail/sql.py) for production.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from app.partners.interfaces import MailMessage


class OutboxState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    dedupe_key: str
    message: MailMessage
    state: OutboxState
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None = None
    sent_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None


class LeaseLost(Exception):
    """The entry is no longer leased by this worker (its lease expired and was taken)."""


@dataclass(frozen=True)
class Backlog:
    depth: int  # pending messages
    oldest_age_seconds: float  # age of the oldest pending message (0 when none)


class OutboxStore(Protocol):
    async def enqueue(self, message: MailMessage, *, dedupe_key: str, now: datetime) -> OutboxEntry:
        """Store a message (or return the one already stored under `dedupe_key`)."""
        ...

    async def claim_due(
        self, *, now: datetime, limit: int, lease_seconds: float, owner: str
    ) -> list[OutboxEntry]:
        """Lease up to `limit` pending messages due by `now` and not leased by a live worker."""
        ...

    async def mark_sent(self, entry_id: int, *, owner: str, now: datetime) -> None: ...

    async def reschedule(
        self,
        entry_id: int,
        *,
        owner: str,
        next_attempt_at: datetime,
        error: str | None,
        count_attempt: bool,
    ) -> None:
        """Put a leased message back for later (after a failure, or held by the quota)."""
        ...

    async def mark_dead(self, entry_id: int, *, owner: str, error: str, now: datetime) -> None: ...

    async def backlog(self, now: datetime) -> Backlog: ...


def message_id_for(entry_id: int, dedupe_key: str, domain: str) -> str:
    """The Message-ID a stored message keeps across every attempt."""
    safe = "".join(c if c.isalnum() or c in "-." else "-" for c in dedupe_key)[:64]
    return f"<outbox-{entry_id}-{safe}@{domain}>"


class InMemoryOutboxStore:
    """The OutboxStore protocol in one process's memory (tests)."""

    def __init__(self, *, message_id_domain: str = "shop.example") -> None:
        self._entries: dict[int, OutboxEntry] = {}
        self._by_key: dict[str, int] = {}
        self._domain = message_id_domain

    @property
    def entries(self) -> list[OutboxEntry]:
        return list(self._entries.values())

    async def enqueue(self, message: MailMessage, *, dedupe_key: str, now: datetime) -> OutboxEntry:
        if dedupe_key in self._by_key:
            return self._entries[self._by_key[dedupe_key]]
        entry_id = len(self._entries) + 1
        headers = {"Message-ID": message_id_for(entry_id, dedupe_key, self._domain)}
        stored = replace(message, headers={**message.headers, **headers})
        entry = OutboxEntry(
            id=entry_id,
            dedupe_key=dedupe_key,
            message=stored,
            state=OutboxState.PENDING,
            attempts=0,
            created_at=now,
            next_attempt_at=now,
        )
        self._entries[entry_id] = entry
        self._by_key[dedupe_key] = entry_id
        return entry

    async def claim_due(
        self, *, now: datetime, limit: int, lease_seconds: float, owner: str
    ) -> list[OutboxEntry]:
        due = sorted(
            (
                e
                for e in self._entries.values()
                if e.state == OutboxState.PENDING
                and e.next_attempt_at <= now
                and (e.lease_expires_at is None or e.lease_expires_at <= now)
            ),
            key=lambda e: (e.next_attempt_at, e.id),
        )[:limit]
        expires = now + timedelta(seconds=lease_seconds)
        claimed = [replace(e, lease_owner=owner, lease_expires_at=expires) for e in due]
        for entry in claimed:
            self._entries[entry.id] = entry
        return claimed

    def _leased(self, entry_id: int, owner: str) -> OutboxEntry:
        entry = self._entries[entry_id]
        if entry.lease_owner != owner or entry.state != OutboxState.PENDING:
            raise LeaseLost(f"outbox entry {entry_id} is not leased by {owner}")
        return entry

    async def mark_sent(self, entry_id: int, *, owner: str, now: datetime) -> None:
        entry = self._leased(entry_id, owner)
        self._entries[entry_id] = replace(
            entry,
            state=OutboxState.SENT,
            attempts=entry.attempts + 1,
            sent_at=now,
            last_error=None,
            lease_owner=None,
            lease_expires_at=None,
        )

    async def reschedule(
        self,
        entry_id: int,
        *,
        owner: str,
        next_attempt_at: datetime,
        error: str | None,
        count_attempt: bool,
    ) -> None:
        entry = self._leased(entry_id, owner)
        self._entries[entry_id] = replace(
            entry,
            attempts=entry.attempts + (1 if count_attempt else 0),
            next_attempt_at=next_attempt_at,
            last_error=error if error is not None else entry.last_error,
            lease_owner=None,
            lease_expires_at=None,
        )

    async def mark_dead(self, entry_id: int, *, owner: str, error: str, now: datetime) -> None:
        entry = self._leased(entry_id, owner)
        self._entries[entry_id] = replace(
            entry,
            state=OutboxState.DEAD,
            attempts=entry.attempts + 1,
            last_error=error,
            lease_owner=None,
            lease_expires_at=None,
        )

    async def backlog(self, now: datetime) -> Backlog:
        pending = [e for e in self._entries.values() if e.state == OutboxState.PENDING]
        if not pending:
            return Backlog(0, 0.0)
        oldest = min(e.created_at for e in pending)
        return Backlog(len(pending), max(0.0, (now - oldest).total_seconds()))
