"""Attempt throttling for logins, TOTP steps, checkout step-ups and registrations, in the
database (shared by every worker and host).

Every attempt is counted FIRST, in its own committed transaction, by one conditional
upsert: the row is only incremented while it is not blocked, so of any number of
concurrent attempts only as many pass as the limit allows; the rest are refused
(TooManyAttempts, 429 with Retry-After) before any password or code is evaluated.

- Account and client together (`pair:<scope>:<account>|<ip>`): after
  LOGIN_MAX_FAILURES attempts without a success, every further attempt from that
  client for that account must wait 2^k seconds (k = 0, 1, 2, ..., capped at
  LOGIN_LOCKOUT_SECONDS) after the previous one. A stranger's failures slow down the
  stranger only; the owner on another client is not affected (OWASP Authentication
  Cheat Sheet: no hard account lockout a third party can trigger). Keyed by the e-mail
  as typed, whether or not such an account exists: the answer reveals nothing.
- Client IP across accounts (`ip:<ip>`): IP_MAX_FAILURES failed attempts within
  IP_FAILURE_WINDOW_SECONDS block further attempts from it until the window ends.
- Registrations per client IP (`register:<ip>`): REGISTER_MAX_PER_IP within
  REGISTER_WINDOW_SECONDS.

A success clears the pair counter and gives back the one attempt it took from the
IP counter, so the IP counter counts failures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LoginThrottle
from app.db.session import Database
from app.db.types import utcnow
from app.domain.errors import TooManyAttempts
from app.settings import get_settings


def _register_max() -> int:
    return get_settings().register_max_per_ip


def _register_window() -> int:
    return get_settings().register_window_seconds


@dataclass(frozen=True)
class ThrottlePolicy:
    account_max_failures: int  # per (account, client) before growing delays
    account_lockout_seconds: int  # the longest delay, and how long failures are remembered
    ip_max_failures: int
    ip_window_seconds: int
    register_max_per_ip: int = field(default_factory=_register_max)
    register_window_seconds: int = field(default_factory=_register_window)
    account_backoff_initial_seconds: int = 30  # the first delay; it doubles after each failure


def account_key(email: str) -> str:
    """The legacy per-account lock key (rows of the previous release)."""
    return f"account:{email.strip().lower()}"


def pair_prefix(scope: str, account: str) -> str:
    return f"pair:{scope}:{account.strip().lower()}|"


def pair_key(scope: str, account: str, ip: str | None) -> str:
    return pair_prefix(scope, account) + (ip or "unknown")


def ip_key(ip: str) -> str:
    return f"ip:{ip}"


def register_key(ip: str | None) -> str:
    return f"register:{ip or 'unknown'}"


def _retry_after(until: datetime, now: datetime) -> int:
    return max(1, math.ceil((until - now).total_seconds()))


def _insert(session: AsyncSession):
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def _take(
    session: AsyncSession,
    key: str,
    *,
    limit: int,
    window_seconds: int,
    backoff_initial_seconds: int | None,
) -> datetime | None:
    """Count one attempt on `key` unless it is blocked now. Returns None when counted, else
    the time the block ends. One statement: concurrent attempts cannot all pass."""
    now = utcnow()
    window_start = now - timedelta(seconds=window_seconds)
    expired = LoginThrottle.window_started_at < window_start
    stmt = _insert(session)(LoginThrottle).values(key=key, failures=1, window_started_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[LoginThrottle.key],
        set_={
            "failures": case((expired, 1), else_=LoginThrottle.failures + 1),
            "window_started_at": case((expired, now), else_=LoginThrottle.window_started_at),
        },
        where=LoginThrottle.locked_until.is_(None) | (LoginThrottle.locked_until <= now),
    ).returning(LoginThrottle.failures, LoginThrottle.window_started_at)
    row = (await session.execute(stmt)).first()
    if row is None:  # blocked: nothing counted
        until = await session.scalar(
            select(LoginThrottle.locked_until).where(LoginThrottle.key == key)
        )
        return until or now + timedelta(seconds=1)
    count, started = row
    if count >= limit:
        # The attempt that reaches the limit passes and blocks the next ones: with backoff
        # for initial x 2^(count - limit) seconds (at most the window), else until the
        # window ends.
        # The row stays locked by this transaction until it commits, so no concurrent
        # attempt slips in between.
        if backoff_initial_seconds is not None:
            delay = backoff_initial_seconds * 2 ** min(count - limit, 30)
            until = now + timedelta(seconds=min(delay, window_seconds))
        else:
            until = started + timedelta(seconds=window_seconds)
        await session.execute(
            update(LoginThrottle).where(LoginThrottle.key == key).values(locked_until=until)
        )
    return None


async def take_attempt(
    db: Database, policy: ThrottlePolicy, scope: str, account: str, ip: str | None
) -> None:
    """Count an attempt on (account, client) and on the client IP, committed before the
    caller evaluates the password or code; raise TooManyAttempts when either refuses."""
    now = utcnow()
    async with db.write() as session:
        if ip:
            blocked = await _take(
                session,
                ip_key(ip),
                limit=policy.ip_max_failures,
                window_seconds=policy.ip_window_seconds,
                backoff_initial_seconds=None,
            )
            if blocked is not None:
                raise TooManyAttempts(
                    "too many attempts from this address; try again later",
                    retry_after_seconds=_retry_after(blocked, now),
                )
        blocked = await _take(
            session,
            pair_key(scope, account, ip),
            limit=policy.account_max_failures,
            window_seconds=policy.account_lockout_seconds,
            backoff_initial_seconds=policy.account_backoff_initial_seconds,
        )
    if blocked is not None:
        # the IP attempt above is committed too: a refused attempt still counts for the IP
        raise TooManyAttempts(
            "account is locked for this client after repeated failed attempts; "
            "wait before trying again",
            retry_after_seconds=_retry_after(blocked, now),
        )


async def take_registration(db: Database, policy: ThrottlePolicy, ip: str | None) -> None:
    now = utcnow()
    async with db.write() as session:
        blocked = await _take(
            session,
            register_key(ip),
            limit=policy.register_max_per_ip,
            window_seconds=policy.register_window_seconds,
            backoff_initial_seconds=None,
        )
    if blocked is not None:
        raise TooManyAttempts(
            "too many registrations from this address; try again later",
            retry_after_seconds=_retry_after(blocked, now),
        )


async def record_success(session: AsyncSession, scope: str, account: str, ip: str | None) -> None:
    """The attempt succeeded: clear the (account, client) counter, give the IP its attempt
    back. Rows are touched in the order take_attempt locks them (IP, then pair): no
    deadlock between the two on PostgreSQL."""
    if ip:
        await session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.key == ip_key(ip), LoginThrottle.failures > 0)
            .values(failures=LoginThrottle.failures - 1)
        )
    await session.execute(
        delete(LoginThrottle).where(LoginThrottle.key == pair_key(scope, account, ip))
    )


async def unlock(session: AsyncSession, email: str) -> None:
    """Lift every login delay of an account (all clients) and a legacy account lock."""
    email = email.strip().lower()
    await session.execute(
        delete(LoginThrottle).where(
            (LoginThrottle.key == account_key(email))
            | LoginThrottle.key.startswith(pair_prefix("login", email), autoescape=True)
        )
    )


async def locked_until(session: AsyncSession, email: str) -> datetime | None:
    """The latest time any client of this account is delayed until, or None."""
    email = email.strip().lower()
    value = await session.scalar(
        select(func.max(LoginThrottle.locked_until)).where(
            (LoginThrottle.key == account_key(email))
            | LoginThrottle.key.startswith(pair_prefix("login", email), autoescape=True)
        )
    )
    if value is None or value <= utcnow():
        return None
    return value
