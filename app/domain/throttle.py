"""Login throttling: failed attempts counted per account and per client IP, in the database
(shared by every worker and host).

- Account: after LOGIN_MAX_FAILURES failures within LOGIN_LOCKOUT_SECONDS the
  account is locked for LOGIN_LOCKOUT_SECONDS. Keyed by the e-mail as typed
  (normalized), whether or not such an account exists, so a lockout reveals
  nothing about which e-mails are registered.
- IP: more than IP_MAX_FAILURES failures within IP_FAILURE_WINDOW_SECONDS from
  one address blocks further attempts from it until the window ends.

Counting is an atomic upsert, so concurrent failures are all counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LoginThrottle, utcnow
from app.errors import TooManyAttempts


@dataclass(frozen=True)
class ThrottlePolicy:
    account_max_failures: int
    account_lockout_seconds: int
    ip_max_failures: int
    ip_window_seconds: int


def account_key(email: str) -> str:
    return f"account:{email.strip().lower()}"


def ip_key(ip: str) -> str:
    return f"ip:{ip}"


def _retry_after(until: datetime, now: datetime) -> str:
    return str(max(1, math.ceil((until - now).total_seconds())))


async def ensure_allowed(session: AsyncSession, email: str, ip: str | None) -> None:
    """Refuse (429 with Retry-After) when the account is locked or the IP is blocked."""
    now = utcnow()
    keys = [account_key(email)] + ([ip_key(ip)] if ip else [])
    rows = (
        await session.execute(select(LoginThrottle).where(LoginThrottle.key.in_(keys)))
    ).scalars()
    for row in rows:
        if row.locked_until is not None and row.locked_until > now:
            what = "account is locked" if row.key.startswith("account:") else "too many attempts"
            raise TooManyAttempts(
                f"{what} after repeated failed logins; try again later",
                headers={"Retry-After": _retry_after(row.locked_until, now)},
            )


async def _count_failure(
    session: AsyncSession, key: str, max_failures: int, window_seconds: int, lock_seconds: int
) -> None:
    now = utcnow()
    window_start = now - timedelta(seconds=window_seconds)
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(LoginThrottle).values(key=key, failures=1, window_started_at=now)
    expired = LoginThrottle.window_started_at < window_start
    stmt = stmt.on_conflict_do_update(
        index_elements=[LoginThrottle.key],
        set_={
            "failures": case((expired, 1), else_=LoginThrottle.failures + 1),
            "window_started_at": case((expired, now), else_=LoginThrottle.window_started_at),
        },
    )
    await session.execute(stmt)
    await session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.key == key, LoginThrottle.failures >= max_failures)
        .values(locked_until=now + timedelta(seconds=lock_seconds), failures=0)
    )


async def record_failure(
    session: AsyncSession, policy: ThrottlePolicy, email: str, ip: str | None
) -> None:
    await _count_failure(
        session,
        account_key(email),
        policy.account_max_failures,
        policy.account_lockout_seconds,
        policy.account_lockout_seconds,
    )
    if ip:
        await _count_failure(
            session,
            ip_key(ip),
            policy.ip_max_failures,
            policy.ip_window_seconds,
            policy.ip_window_seconds,
        )


async def record_success(session: AsyncSession, email: str) -> None:
    await session.execute(delete(LoginThrottle).where(LoginThrottle.key == account_key(email)))


async def unlock(session: AsyncSession, email: str) -> None:
    await record_success(session, email)


async def locked_until(session: AsyncSession, email: str) -> datetime | None:
    row = await session.get(LoginThrottle, account_key(email))
    if row is None or row.locked_until is None or row.locked_until <= utcnow():
        return None
    return row.locked_until
