"""The deliverability guard: a daily cap and a per-minute rate on sent mail.

The window arithmetic is pure (`windows_at`); the counting goes through a
`QuotaStore`, so that every worker process shares one count (`SqlQuotaStore`
in the shop; `InMemoryQuotaStore` serves tests).
A message that does not fit is not sent: the caller holds it until
`QuotaDecision.retry_at`, the moment the closed window reopens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Window:
    key: str  # e.g. "day:2026-11-23" or "minute:2026-11-23T10:15"
    limit: int
    ends_at: datetime


@dataclass(frozen=True)
class QuotaDecision:
    allowed: bool
    retry_at: datetime | None  # when not allowed: when the blocking window reopens
    windows: tuple[Window, ...]
    blocked_by: str | None = None  # "day" or "minute"


class QuotaStore(Protocol):
    async def try_consume(self, windows: Sequence[Window]) -> str | None:
        """Atomically count one message in every window if all are below their limit.

        Returns None on success, else the key of the first full window (nothing counted).
        """
        ...

    async def release(self, windows: Sequence[Window]) -> None:
        """Give one message back (it was not delivered after all)."""
        ...

    async def used(self, window: Window) -> int: ...


def windows_at(
    now: datetime, *, daily_cap: int, per_minute: int, timezone: str = "UTC"
) -> tuple[Window, Window]:
    """The day and minute windows that contain `now` (an aware datetime)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local = now.astimezone(ZoneInfo(timezone))
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    # Aware arithmetic with a ZoneInfo is wall-clock: this is the next local midnight,
    # also across a DST change (such a day is 23 or 25 hours long).
    next_day = day_start + timedelta(days=1)
    minute_start = now.replace(second=0, microsecond=0)
    day = Window(f"day:{day_start:%Y-%m-%d}", daily_cap, next_day)
    minute = Window(
        f"minute:{minute_start.astimezone(ZoneInfo('UTC')):%Y-%m-%dT%H:%M}",
        per_minute,
        minute_start + timedelta(minutes=1),
    )
    return day, minute


class SendingQuota:
    def __init__(
        self, store: QuotaStore, *, daily_cap: int, per_minute: int, timezone: str = "UTC"
    ) -> None:
        if daily_cap < 1 or per_minute < 1:
            raise ValueError("daily_cap and per_minute must be at least 1")
        ZoneInfo(timezone)  # fail early on a bad zone name
        self._store = store
        self.daily_cap = daily_cap
        self.per_minute = per_minute
        self.timezone = timezone

    def windows(self, now: datetime) -> tuple[Window, Window]:
        return windows_at(
            now, daily_cap=self.daily_cap, per_minute=self.per_minute, timezone=self.timezone
        )

    async def acquire(self, now: datetime) -> QuotaDecision:
        day, minute = self.windows(now)
        full = await self._store.try_consume((day, minute))
        if full is None:
            return QuotaDecision(True, None, (day, minute))
        blocking = day if full == day.key else minute
        return QuotaDecision(
            False, blocking.ends_at, (day, minute), blocked_by=blocking.key.split(":")[0]
        )

    async def release(self, decision: QuotaDecision) -> None:
        if decision.allowed:
            await self._store.release(decision.windows)

    async def remaining(self, now: datetime) -> dict[str, int]:
        day, minute = self.windows(now)
        return {
            "day": max(0, day.limit - await self._store.used(day)),
            "minute": max(0, minute.limit - await self._store.used(minute)),
        }


class InMemoryQuotaStore:
    """One process's counts (tests)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._ends: dict[str, datetime] = {}

    async def try_consume(self, windows: Sequence[Window]) -> str | None:
        for window in windows:
            if self._counts.get(window.key, 0) >= window.limit:
                return window.key
        for window in windows:
            self._counts[window.key] = self._counts.get(window.key, 0) + 1
            self._ends[window.key] = window.ends_at
        self._forget_before(min(w.ends_at for w in windows) - timedelta(days=2))
        return None

    async def release(self, windows: Sequence[Window]) -> None:
        for window in windows:
            if self._counts.get(window.key, 0) > 0:
                self._counts[window.key] -= 1

    async def used(self, window: Window) -> int:
        return self._counts.get(window.key, 0)

    def _forget_before(self, cutoff: datetime) -> None:
        for key in [k for k, ends in self._ends.items() if ends < cutoff]:
            self._counts.pop(key, None)
            self._ends.pop(key, None)
