"""Deliver signed webhooks from a sandbox to the shop, in the background, with retries.

Like a real provider: an event is stored, then POSTed to the configured URL
with a `Webhook-Signature` header; a non-2xx answer or a network error is
retried a bounded number of times with growing delays.

The signature is the partners' documented scheme, implemented here on its own
(the shop's verifier is not reused, so a bug on either side shows in tests):
`Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, b"<t>." + body)>`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, HttpUrl

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Webhook-Signature"


def signature_header(body: bytes, secret: str, timestamp: int) -> str:
    """The `Webhook-Signature` value for `body` sent at `timestamp` (unix seconds)."""
    if not secret:
        raise ValueError("a webhook secret is required to sign")
    signed_payload = b"%d." % timestamp + body
    mac = hmac.new(secret.encode("utf-8"), signed_payload, digestmod=hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


@dataclass
class Delivery:
    event: dict[str, Any]
    url: str
    attempts: int = 0
    status_code: int | None = None
    delivered: bool = False
    last_error: str | None = None
    responses: list[int] = field(default_factory=list)


class WebhookSender:
    def __init__(
        self,
        secret: str,
        url: str | None = None,
        *,
        max_attempts: int = 5,
        first_delay_seconds: float = 0.5,
        timeout_seconds: float = 5.0,
    ) -> None:
        self.secret = secret
        self.url = url
        self.max_attempts = max_attempts
        self.first_delay_seconds = first_delay_seconds
        self.timeout_seconds = timeout_seconds
        self.deliveries: list[Delivery] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def emit(self, event_type: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """Queue one event for delivery; None when no webhook URL is configured."""
        if not self.url:
            return None
        event = {
            "id": f"evt_{secrets.token_hex(12)}",
            "type": event_type,
            "created": int(time.time()),
            "data": data,
        }
        delivery = Delivery(event=event, url=self.url)
        self.deliveries.append(delivery)
        task = asyncio.get_running_loop().create_task(self._deliver(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return event

    async def _deliver(self, delivery: Delivery) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_seconds)
        body = json.dumps(delivery.event, separators=(",", ":")).encode()
        delay = self.first_delay_seconds
        for _ in range(self.max_attempts):
            delivery.attempts += 1
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: signature_header(body, self.secret, int(time.time())),
            }
            try:
                response = await self._client.post(delivery.url, content=body, headers=headers)
                delivery.status_code = response.status_code
                delivery.responses.append(response.status_code)
                if response.is_success:
                    delivery.delivered = True
                    return
                delivery.last_error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                delivery.last_error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(delay)
            delay *= 2
        log.warning(
            "webhook %s to %s given up: %s", delivery.event["id"], delivery.url, delivery.last_error
        )

    async def drain(self) -> None:
        """Wait for deliveries under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def summary(self) -> list[dict[str, Any]]:
        return [
            {
                "event_id": d.event["id"],
                "type": d.event["type"],
                "url": d.url,
                "attempts": d.attempts,
                "delivered": d.delivered,
                "status_code": d.status_code,
                "last_error": d.last_error,
            }
            for d in self.deliveries
        ]


class WebhookTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl | None


def webhook_admin_router(sender: WebhookSender) -> APIRouter:
    """`/admin/webhooks`: where events go, and how their deliveries went."""
    router = APIRouter(prefix="/admin/webhooks", tags=["webhooks"])

    @router.get("")
    async def deliveries() -> dict[str, Any]:
        return {"url": sender.url, "deliveries": sender.summary()}

    @router.put("")
    async def set_target(target: WebhookTarget) -> dict[str, Any]:
        sender.url = str(target.url) if target.url else None
        return {"url": sender.url}

    return router
