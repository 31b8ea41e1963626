"""One time budget for everything a request asks of the partners.

A deadline belongs to the current task (a context variable), so it follows a
checkout through every partner call it makes, and into the tasks it starts
with `asyncio.gather` / `create_task` (they copy the context):

    with deadline(settings.checkout_deadline_seconds):   # or `async with`
        quotes = await couriers.quote(parcel)
        result = await payments.charge(request)

`remaining()` is the time left (None: no deadline). Deadlines nest; the
earlier one wins, so an inner block can only shorten the budget. The
ResilientCaller starts no attempt and sleeps no backoff past the deadline
(it fails with ProviderFailure kind "deadline"), and the HTTP gateways give
each request min(configured timeout, remaining()).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from contextvars import ContextVar, Token
from types import TracebackType

# Less than this left and no new attempt is started: it could only time out.
MIN_ATTEMPT_SECONDS = 0.05
# The hard stop of one request fires this much after the deadline, so that the
# HTTP client's own (cut) timeouts, which say what failed, normally fire first.
HARD_STOP_GRACE_SECONDS = 0.1

_EXPIRES_AT: ContextVar[float | None] = ContextVar("partners_deadline", default=None)


class DeadlineExceeded(Exception):
    """The current deadline is spent."""


class deadline:  # lower case: used like a function, `with deadline(12):`
    """A deadline `seconds` from now for the enclosed block (sync or async)."""

    def __init__(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a deadline cannot be in the past")
        self._seconds = seconds
        self._token: Token[float | None] | None = None

    def __enter__(self) -> deadline:
        expires_at = time.monotonic() + self._seconds
        outer = _EXPIRES_AT.get()
        if outer is not None:
            expires_at = min(outer, expires_at)
        self._token = _EXPIRES_AT.set(expires_at)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _EXPIRES_AT.reset(self._token)
            self._token = None

    async def __aenter__(self) -> deadline:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def remaining() -> float | None:
    """Seconds left before the current deadline (never negative); None without one."""
    expires_at = _EXPIRES_AT.get()
    if expires_at is None:
        return None
    return max(0.0, expires_at - time.monotonic())


def time_for(seconds: float = 0.0) -> bool:
    """Whether an attempt can still start after waiting `seconds` (always, without a deadline)."""
    left = remaining()
    return left is None or left - seconds >= MIN_ATTEMPT_SECONDS


def spent() -> bool:
    """Whether the current deadline leaves no time for another attempt."""
    return not time_for(0.0)


def check(what: str = "the request") -> None:
    """Raise DeadlineExceeded when no time is left for `what`."""
    if spent():
        raise DeadlineExceeded(f"no time left for {what}")


def capped(seconds: float | None) -> float | None:
    """min(seconds, remaining()); a None (no limit) becomes the remaining time."""
    left = remaining()
    if left is None:
        return seconds
    return left if seconds is None else min(seconds, left)


def hard_stop() -> contextlib.AbstractAsyncContextManager[object]:
    """Cancel the enclosed block (TimeoutError) shortly after the deadline; a no-op without one.

    A guard around one request: its phases (connect, write, read) each have
    their own timeout, so only this bounds their sum.
    """
    left = remaining()
    if left is None:
        return contextlib.nullcontext()
    return asyncio.timeout(left + HARD_STOP_GRACE_SECONDS)
