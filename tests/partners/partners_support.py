"""Helpers for the partners suite: metric readers, sandbox handles, fast settings."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY

from app.partners.settings import PartnersSettings
from app.sandbox.smtp import ReceivedMessage, SmtpSandbox

WEBHOOK_SECRET = "test-webhook-secret"


def metric(name: str, **labels: str) -> float:
    """Current value of one series in the default registry (0 when absent)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclass
class Sandbox:
    url: str
    app: FastAPI
    admin: httpx.AsyncClient

    async def set_faults(self, service: str, **knobs: object) -> None:
        response = await self.admin.put(f"/admin/faults/{service}", json=knobs)
        response.raise_for_status()


def fast_settings(**overrides: object) -> PartnersSettings:
    """Partner settings tuned for tests: short timeouts and backoff, a small breaker threshold."""
    values: dict[str, object] = {
        "payment_timeout_seconds": 0.5,
        "payment_attempts_per_provider": 3,
        "retry_backoff_initial_seconds": 0.01,
        "retry_backoff_max_seconds": 0.02,
        "breaker_failure_threshold": 5,
        "breaker_reset_seconds": 60,
        "courier_timeout_seconds": 0.5,
    }
    values.update(overrides)
    return PartnersSettings(**values)  # type: ignore[arg-type]


@dataclass
class SmtpSink:
    host: str
    port: int
    sandbox: SmtpSandbox
    admin: httpx.AsyncClient

    @property
    def messages(self) -> list[ReceivedMessage]:
        return self.sandbox.sink.messages

    async def set_faults(self, **knobs: object) -> None:
        response = await self.admin.put("/admin/faults/smtp", json=knobs)
        response.raise_for_status()
