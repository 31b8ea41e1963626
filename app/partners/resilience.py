"""Retries with backoff under a circuit breaker per provider, within the request's deadline.

A call that fails with `ProviderFailure` (5xx, timeout, connection refused)
is retried with exponential backoff and jitter (tenacity); every failure is also counted
by the provider's circuit breaker (purgatory). Once a provider has failed
`breaker_failure_threshold` times in a row its circuit opens and calls fail at
once with `CircuitOpen` for `breaker_reset_seconds`, then one trial call
(half-open) decides whether it closes again.

Under a deadline (app/partners/deadline.py) no attempt is started without time
left and no backoff sleeps past it: the call fails with ProviderFailure kind
"deadline" instead. A "deadline" failure is not retried and does not count
against the provider's breaker (the budget ran out, not the provider).
`request_timeout()` gives the HTTP gateways min(configured timeout, remaining).

A provider's rate limit (HTTP 429, `ProviderRateLimited`, kind "rate_limited") is not an
outage: it is not retried (the provider said when to come back: Retry-After) and does
not count against the breaker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from app.partners import deadline
from app.partners.metrics import CIRCUIT_CLOSED, CIRCUIT_HALF_OPEN, CIRCUIT_OPEN

T = TypeVar("T")

_STATE_CODES = {"closed": CIRCUIT_CLOSED, "half-opened": CIRCUIT_HALF_OPEN, "opened": CIRCUIT_OPEN}

DEADLINE = "deadline"
RATE_LIMITED = "rate_limited"


class ProviderFailure(Exception):
    """The provider gave no answer we can trust; worth retrying (unless kind is "deadline")."""

    def __init__(
        self, provider: str, kind: str, message: str, *, maybe_processed: bool = False
    ) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.kind = kind  # "error", "timeout" or "deadline"
        # True when the request may have reached the provider and been carried out
        # (a timeout or a dropped connection after it was sent): its outcome is unknown.
        self.maybe_processed = maybe_processed


class ProviderRateLimited(ProviderFailure):
    """The provider refused for now (429): do not call it again for `retry_after_seconds`."""

    def __init__(self, provider: str, retry_after_seconds: float, message: str) -> None:
        super().__init__(provider, RATE_LIMITED, message)
        self.retry_after_seconds = retry_after_seconds


class CircuitOpen(Exception):
    """The provider's circuit is open: it was not called."""

    def __init__(self, provider: str) -> None:
        super().__init__(f"circuit of {provider} is open")
        self.provider = provider


StateListener = Callable[[str, int], None]


def _is_deadline(exc: BaseException) -> bool:
    return isinstance(exc, ProviderFailure) and exc.kind == DEADLINE


def _worth_retrying(exc: BaseException) -> bool:
    return isinstance(exc, ProviderFailure) and exc.kind not in (DEADLINE, RATE_LIMITED)


def request_timeout(configured: httpx.Timeout) -> httpx.Timeout:
    """The timeouts of one request: each of `configured`'s, cut to the deadline's remaining time."""
    if deadline.remaining() is None:
        return configured
    return httpx.Timeout(
        connect=deadline.capped(configured.connect),
        read=deadline.capped(configured.read),
        write=deadline.capped(configured.write),
        pool=deadline.capped(configured.pool),
    )


class ResilientCaller:
    def __init__(
        self,
        *,
        attempts: int,
        backoff_initial_seconds: float,
        backoff_max_seconds: float,
        breaker_failure_threshold: int,
        breaker_reset_seconds: float,
        on_state_change: StateListener | None = None,
    ) -> None:
        self._attempts = attempts
        self._wait = wait_exponential_jitter(
            multiplier=backoff_initial_seconds,
            max=backoff_max_seconds,
            jitter=backoff_initial_seconds,
        )
        self._breakers = AsyncCircuitBreakerFactory(
            default_threshold=breaker_failure_threshold,
            default_ttl=breaker_reset_seconds,
            # Neither an exhausted deadline nor a rate limit says the provider is down.
            # (first match wins: the subclass before its base)
            exclude=[ProviderRateLimited, (ProviderFailure, _is_deadline)],
        )
        self._on_state_change = on_state_change
        if on_state_change is not None:
            self._breakers.add_listener(self._hook)

    def _hook(self, circuit: str, event_type: str, payload: Any) -> None:
        if event_type == "state_changed" and self._on_state_change is not None:
            self._on_state_change(circuit, _STATE_CODES[payload.state])

    async def call(
        self, provider: str, operation: Callable[[], Awaitable[T]], *, attempts: int | None = None
    ) -> T:
        """Run `operation` against `provider` with retries, under its breaker and the deadline.

        Raises ProviderFailure when every attempt failed (kind "deadline" when
        the deadline left no time for the next attempt or its backoff; the
        earlier failure is its __cause__), CircuitOpen when the breaker refused
        the call; any other exception passes through. `attempts` overrides the
        configured number for this call.
        """
        tries = attempts or self._attempts
        if not deadline.time_for(0.0):
            raise ProviderFailure(provider, DEADLINE, "no time left for a first attempt")

        def out_of_time(state: RetryCallState) -> bool:
            # tenacity has computed the backoff before it asks whether to stop.
            return not deadline.time_for(state.upcoming_sleep)

        def give_up(state: RetryCallState) -> T:
            assert state.outcome is not None
            failure = state.outcome.exception()
            if state.attempt_number < tries and isinstance(failure, ProviderFailure):
                left = deadline.remaining() or 0.0
                raise ProviderFailure(
                    provider,
                    DEADLINE,
                    f"{left:.3f}s left, not enough for attempt {state.attempt_number + 1} "
                    f"after {state.upcoming_sleep:.3f}s of backoff",
                ) from failure
            assert failure is not None
            raise failure

        retrying = AsyncRetrying(
            stop=stop_after_attempt(tries) | out_of_time,
            wait=self._wait,
            retry=retry_if_exception(_worth_retrying),
            retry_error_callback=give_up,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    breaker = await self._breakers.get_breaker(provider)
                    async with breaker:
                        return await operation()
        except OpenedState:
            raise CircuitOpen(provider) from None
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover
