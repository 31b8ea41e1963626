"""Fault knobs: what QA and on-call turn to make a sandbox misbehave on purpose.

Every service a sandbox hosts (a payment provider, a courier, the SMTP sink)
has its own set of knobs. Handlers call `FaultBoard.inject(service)` before
doing their work; it adds latency, or fails the request the way the knobs say,
and counts the outcome in `sandbox_requests_total`. Payment providers also call
`FaultBoard.inject_after_capture(provider)` once a charge is carried out (booked,
or replayed), for the knob that loses its answer. Every knob's current value is
exported as `sandbox_fault_setting{service, knob}`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from app.sandbox import metrics
from app.sandbox.metrics import Outcome


class FaultSettings(BaseModel):
    """The knobs of one service. Rates are percentages of requests (0-100)."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int = Field(default=0, ge=0, le=60_000, description="added to every request")
    error_rate: float = Field(default=0, ge=0, le=100, description="% answered with a 5xx")
    timeout_rate: float = Field(default=0, ge=0, le=100, description="% that hang, then 504")
    timeout_ms: int = Field(default=30_000, ge=0, le=600_000, description="how long a hang lasts")
    outage: bool = Field(default=False, description="every request fails at once (503)")
    rate_limit: float = Field(
        default=0, ge=0, le=100, description="% answered 429 Too Many Requests with Retry-After"
    )
    retry_after_seconds: int = Field(
        default=1, ge=0, le=3600, description="the Retry-After of a rate_limit answer"
    )
    decline_rate: float = Field(default=0, ge=0, le=100, description="payments: % declined")
    capture_timeout_rate: float = Field(
        default=0,
        ge=0,
        le=100,
        description=(
            "payments: % of charges carried out (booked, or replayed) whose answer then hangs"
            " timeout_ms and is lost (504): the provider charged, the caller cannot tell"
        ),
    )


# Knobs that only a payment provider has.
PAYMENT_ONLY_KNOBS = ("decline_rate", "capture_timeout_rate")


class FaultPatch(BaseModel):
    """A partial change of knobs; unset fields keep their value."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int | None = Field(default=None, ge=0, le=60_000)
    error_rate: float | None = Field(default=None, ge=0, le=100)
    timeout_rate: float | None = Field(default=None, ge=0, le=100)
    timeout_ms: int | None = Field(default=None, ge=0, le=600_000)
    outage: bool | None = None
    rate_limit: float | None = Field(default=None, ge=0, le=100)
    retry_after_seconds: int | None = Field(default=None, ge=0, le=3600)
    decline_rate: float | None = Field(default=None, ge=0, le=100)
    capture_timeout_rate: float | None = Field(default=None, ge=0, le=100)


class FaultTriggered(Exception):
    """A request failed because a knob said so; rendered as an HTTP error."""

    def __init__(
        self,
        service: str,
        outcome: Outcome,
        status_code: int,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.service = service
        self.outcome = outcome
        self.status_code = status_code
        self.message = message
        self.headers = headers


class UnknownService(KeyError):
    pass


class FaultBoard:
    """The knobs of every service one sandbox process hosts."""

    def __init__(
        self,
        services: Iterable[str],
        *,
        declining_services: Iterable[str] = (),
        rng: random.Random | None = None,
    ) -> None:
        self._settings = {name: FaultSettings() for name in services}
        self._declining = set(declining_services)
        self._rng = rng or random.Random()  # noqa: S311 - fault dice, not crypto
        for name in self._settings:
            metrics.declare(name)
            self._export(name)

    @property
    def services(self) -> list[str]:
        return list(self._settings)

    def declines(self, service: str) -> bool:
        return service in self._declining

    def get(self, service: str) -> FaultSettings:
        try:
            return self._settings[service]
        except KeyError:
            raise UnknownService(service) from None

    def update(self, service: str, patch: FaultPatch) -> FaultSettings:
        current = self.get(service)
        changes = patch.model_dump(exclude_none=True)
        for knob in PAYMENT_ONLY_KNOBS:
            if changes.get(knob) and service not in self._declining:
                raise ValueError(f"{knob} applies to payment providers only, not {service!r}")
        updated = current.model_copy(update=changes)
        self._settings[service] = updated
        self._export(service)
        return updated

    def reset(self, service: str) -> FaultSettings:
        self.get(service)
        self._settings[service] = FaultSettings()
        self._export(service)
        return self._settings[service]

    def _export(self, service: str) -> None:
        for knob, value in self._settings[service].model_dump().items():
            metrics.FAULT_SETTING.labels(service=service, knob=knob).set(float(value))

    def _roll(self, percent: float) -> bool:
        return percent > 0 and self._rng.uniform(0, 100) < percent

    def should_decline(self, service: str) -> bool:
        return self._roll(self.get(service).decline_rate)

    async def inject(self, service: str) -> None:
        """Apply the service's knobs to one request: return normally, or raise FaultTriggered."""
        knobs = self.get(service)
        if knobs.outage:
            metrics.record(service, Outcome.OUTAGE)
            raise FaultTriggered(service, Outcome.OUTAGE, 503, f"{service} is down (injected)")
        if knobs.latency_ms:
            await asyncio.sleep(knobs.latency_ms / 1000)
        if self._roll(knobs.rate_limit):
            metrics.record(service, Outcome.REJECTED)  # a 4xx refusal, not a failure
            raise FaultTriggered(
                service,
                Outcome.REJECTED,
                429,
                f"{service} rate limit exceeded (injected)",
                headers={"Retry-After": str(knobs.retry_after_seconds)},
            )
        if self._roll(knobs.timeout_rate):
            # Counted when the hang starts, so the metric moves while callers wait.
            metrics.record(service, Outcome.TIMEOUT)
            await asyncio.sleep(knobs.timeout_ms / 1000)
            raise FaultTriggered(service, Outcome.TIMEOUT, 504, f"{service} timed out (injected)")
        if self._roll(knobs.error_rate):
            metrics.record(service, Outcome.ERROR)
            raise FaultTriggered(service, Outcome.ERROR, 500, f"{service} failed (injected)")

    async def inject_after_capture(self, service: str) -> None:
        """A charge was carried out: lose its answer as `capture_timeout_rate` says.

        The hang lasts `timeout_ms`, then the answer is a 504 (a caller with a
        shorter timeout has given up by then): the charge stays booked.
        """
        knobs = self.get(service)
        if self._roll(knobs.capture_timeout_rate):
            metrics.record(service, Outcome.TIMEOUT)
            await asyncio.sleep(knobs.timeout_ms / 1000)
            raise FaultTriggered(
                service, Outcome.TIMEOUT, 504, f"{service} charged, then timed out (injected)"
            )


def fault_admin_router(board: FaultBoard) -> APIRouter:
    """`/admin/faults`: read and turn the knobs at run time."""
    router = APIRouter(prefix="/admin/faults", tags=["faults"])

    def known(service: str) -> str:
        if service not in board.services:
            raise HTTPException(404, f"unknown service {service!r}; known: {board.services}")
        return service

    def apply(service: str, patch: FaultPatch) -> FaultSettings:
        try:
            return board.update(service, patch)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc

    @router.get("")
    async def list_faults() -> dict[str, FaultSettings]:
        return {name: board.get(name) for name in board.services}

    @router.put("")
    async def set_all(patch: FaultPatch) -> dict[str, FaultSettings]:
        """Apply the same change to every service of this sandbox (payment knobs: payments only)."""
        without_declines = patch.model_copy(update=dict.fromkeys(PAYMENT_ONLY_KNOBS))
        return {
            name: apply(name, patch if board.declines(name) else without_declines)
            for name in board.services
        }

    @router.delete("")
    async def reset_all() -> dict[str, FaultSettings]:
        return {name: board.reset(name) for name in board.services}

    @router.get("/{service}")
    async def get_one(service: str) -> FaultSettings:
        return board.get(known(service))

    @router.put("/{service}")
    async def set_one(service: str, patch: FaultPatch) -> FaultSettings:
        return apply(known(service), patch)

    @router.delete("/{service}")
    async def reset_one(service: str) -> FaultSettings:
        return board.reset(known(service))

    return router
