"""The outbox and the sending quota in SQL (PostgreSQL in production, SQLite embedded).

Tables:
- `mail_outbox`: one row per message; `dedupe_key` unique; a partial index on
  the due pending rows is what the worker's claim query walks.
- `mail_quota`: one row per quota window ("day:2026-11-23",
  "minute:2026-11-23T10:15") with the count used in it.

Every state change is a conditional UPDATE (`... WHERE lease_owner = :me`,
`... WHERE used < :limit`): correct under concurrent workers on any backend;
on PostgreSQL the claim also uses FOR UPDATE SKIP LOCKED so workers do not
queue behind each other's candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Index,
    Integer,
    String,
    Text,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base
from app.db.types import UTCDateTime
from app.partners.interfaces import MailMessage
from app.partners.mail.outbox import Backlog, LeaseLost, OutboxEntry, OutboxState, message_id_for
from app.partners.mail.quota import Window


class OutboxRow(Base):
    __tablename__ = "mail_outbox"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'sent', 'dead')", name="state"),
        Index(
            "ix_mail_outbox_due",
            "next_attempt_at",
            "id",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(998))
    body_text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(50))
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(10), default=OutboxState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    def entry(self) -> OutboxEntry:
        return OutboxEntry(
            id=self.id,
            dedupe_key=self.dedupe_key,
            message=MailMessage(
                to=self.recipient,
                subject=self.subject,
                body_text=self.body_text,
                kind=self.kind,
                headers=dict(self.headers or {}),
            ),
            state=OutboxState(self.state),
            attempts=self.attempts,
            created_at=self.created_at,
            next_attempt_at=self.next_attempt_at,
            last_error=self.last_error,
            sent_at=self.sent_at,
            lease_owner=self.lease_owner,
            lease_expires_at=self.lease_expires_at,
        )


class QuotaRow(Base):
    __tablename__ = "mail_quota"

    window_key: Mapped[str] = mapped_column(String(40), primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


Sessions = async_sessionmaker[AsyncSession]


class _WindowFull(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class SqlOutboxStore:
    """OutboxStore on SQL. `enqueue_in` writes inside a caller's transaction (the order
    change and its confirmation mail commit together)."""

    def __init__(self, sessions: Sessions, *, message_id_domain: str = "shop.example") -> None:
        self._sessions = sessions
        self._domain = message_id_domain

    async def enqueue_in(
        self, session: AsyncSession, message: MailMessage, *, dedupe_key: str, now: datetime
    ) -> OutboxEntry:
        existing = await session.scalar(select(OutboxRow).where(OutboxRow.dedupe_key == dedupe_key))
        if existing is not None:
            return existing.entry()
        row = OutboxRow(
            dedupe_key=dedupe_key,
            recipient=message.to,
            subject=message.subject,
            body_text=message.body_text,
            kind=message.kind,
            headers=dict(message.headers),
            state=OutboxState.PENDING.value,
            attempts=0,
            created_at=now,
            next_attempt_at=now,
        )
        session.add(row)
        await session.flush()  # assigns the id the Message-ID is made of
        row.headers = {
            **message.headers,
            "Message-ID": message_id_for(row.id, dedupe_key, self._domain),
        }
        await session.flush()
        return row.entry()

    async def enqueue(self, message: MailMessage, *, dedupe_key: str, now: datetime) -> OutboxEntry:
        async with self._sessions.begin() as session:
            return await self.enqueue_in(session, message, dedupe_key=dedupe_key, now=now)

    async def claim_due(
        self, *, now: datetime, limit: int, lease_seconds: float, owner: str
    ) -> list[OutboxEntry]:
        expires = now + timedelta(seconds=lease_seconds)
        async with self._sessions.begin() as session:
            candidates = (
                await session.scalars(
                    select(OutboxRow)
                    .where(
                        OutboxRow.state == OutboxState.PENDING.value,
                        OutboxRow.next_attempt_at <= now,
                        or_(
                            OutboxRow.lease_expires_at.is_(None), OutboxRow.lease_expires_at <= now
                        ),
                    )
                    .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            claimed = []
            for row in candidates:
                result = await session.execute(
                    update(OutboxRow)
                    .where(
                        OutboxRow.id == row.id,
                        OutboxRow.state == OutboxState.PENDING.value,
                        or_(
                            OutboxRow.lease_expires_at.is_(None), OutboxRow.lease_expires_at <= now
                        ),
                    )
                    .values(lease_owner=owner, lease_expires_at=expires)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(
                        replace(row.entry(), lease_owner=owner, lease_expires_at=expires)
                    )
            return claimed

    async def _update_leased(self, entry_id: int, owner: str, **values: Any) -> None:
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.id == entry_id,
                    OutboxRow.lease_owner == owner,
                    OutboxRow.state == OutboxState.PENDING.value,
                )
                .values(lease_owner=None, lease_expires_at=None, **values)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise LeaseLost(f"outbox entry {entry_id} is not leased by {owner}")

    async def mark_sent(self, entry_id: int, *, owner: str, now: datetime) -> None:
        await self._update_leased(
            entry_id,
            owner,
            state=OutboxState.SENT.value,
            attempts=OutboxRow.attempts + 1,
            sent_at=now,
            last_error=None,
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
        values: dict[str, Any] = {"next_attempt_at": next_attempt_at}
        if count_attempt:
            values["attempts"] = OutboxRow.attempts + 1
        if error is not None:
            values["last_error"] = error
        await self._update_leased(entry_id, owner, **values)

    async def mark_dead(self, entry_id: int, *, owner: str, error: str, now: datetime) -> None:
        await self._update_leased(
            entry_id,
            owner,
            state=OutboxState.DEAD.value,
            attempts=OutboxRow.attempts + 1,
            last_error=error,
        )

    async def backlog(self, now: datetime) -> Backlog:
        async with self._sessions() as session:
            depth, oldest = (
                await session.execute(
                    select(func.count(OutboxRow.id), func.min(OutboxRow.created_at)).where(
                        OutboxRow.state == OutboxState.PENDING.value
                    )
                )
            ).one()
        if not depth:
            return Backlog(0, 0.0)
        oldest_at = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
        return Backlog(int(depth), max(0.0, (now - oldest_at).total_seconds()))

    async def entries(self) -> list[OutboxEntry]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all()
            return [row.entry() for row in rows]


class SqlQuotaStore:
    """QuotaStore on SQL: counting is a conditional UPDATE, so concurrent workers share one cap."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    @staticmethod
    async def _ensure_rows(session: AsyncSession, windows: Sequence[Window]) -> None:
        dialect = session.bind.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        for window in windows:
            await session.execute(
                insert(QuotaRow)
                .values(window_key=window.key, used=0, ends_at=window.ends_at)
                .on_conflict_do_nothing(index_elements=["window_key"])
            )

    async def try_consume(self, windows: Sequence[Window]) -> str | None:
        try:
            async with self._sessions.begin() as session:
                await self._ensure_rows(session, windows)
                for window in windows:
                    result = await session.execute(
                        update(QuotaRow)
                        .where(QuotaRow.window_key == window.key, QuotaRow.used < window.limit)
                        .values(used=QuotaRow.used + 1)
                    )
                    if result.rowcount != 1:  # type: ignore[attr-defined]
                        raise _WindowFull(window.key)  # rolls back the other windows' counts
        except _WindowFull as full:
            return full.key
        return None

    async def release(self, windows: Sequence[Window]) -> None:
        async with self._sessions.begin() as session:
            for window in windows:
                await session.execute(
                    update(QuotaRow)
                    .where(QuotaRow.window_key == window.key, QuotaRow.used > 0)
                    .values(used=QuotaRow.used - 1)
                )

    async def used(self, window: Window) -> int:
        async with self._sessions() as session:
            return int(
                await session.scalar(select(QuotaRow.used).where(QuotaRow.window_key == window.key))
                or 0
            )
