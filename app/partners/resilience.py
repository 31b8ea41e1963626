"""Retries with backoff under a circuit breaker per provider.

A call that fails with `ProviderFailure` (5xx, timeout, connection refused)
is retried with exponential backoff and jitter (tenacity); every failure is
also counted by the provider's circuit breaker (purgatory). Once a provider
has failed `breaker_failure_threshold` times in a row its circuit opens and
calls fail at once with `CircuitOpen` for `breaker_reset_seconds`, then one
trial call (half-open) decides whether it closes again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from app.partners.metrics import CIRCUIT_CLOSED, CIRCUIT_HALF_OPEN, CIRCUIT_OPEN

T = TypeVar("T")

_STATE_CODES = {"closed": CIRCUIT_CLOSED, "half-opened": CIRCUIT_HALF_OPEN, "opened": CIRCUIT_OPEN}


class ProviderFailure(Exception):
    """The provider gave no answer we can trust; worth retrying."""

    def __init__(self, provider: str, kind: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.kind = kind  # "error" or "timeout"


class CircuitOpen(Exception):
    """The provider's circuit is open: it was not called."""

    def __init__(self, provider: str) -> None:
        super().__init__(f"circuit of {provider} is open")
        self.provider = provider


StateListener = Callable[[str, int], None]


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
            default_threshold=breaker_failure_threshold, default_ttl=breaker_reset_seconds
        )
        self._on_state_change = on_state_change
        if on_state_change is not None:
            self._breakers.add_listener(self._hook)

    def _hook(self, circuit: str, event_type: str, payload: Any) -> None:
        if event_type == "state_changed" and self._on_state_change is not None:
            self._on_state_change(circuit, _STATE_CODES[payload.state])

    async def call(self, provider: str, operation: Callable[[], Awaitable[T]]) -> T:
        """Run `operation` against `provider` with retries, under its breaker.

        Raises ProviderFailure when every attempt failed, CircuitOpen when the
        breaker refused the call; any other exception passes through.
        """
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            retry=retry_if_exception_type(ProviderFailure),
            reraise=True,
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
