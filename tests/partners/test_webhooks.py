"""Signed webhooks: the sandbox signs, the shop-side verifier admits only authentic, fresh ones."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request
from partners_support import WEBHOOK_SECRET, Sandbox

from app.api.webhooks import verified_json
from app.partners.webhooks import (
    SIGNATURE_HEADER,
    WebhookVerificationError,
    sign,
    verify,
)
from app.sandbox.serving import serving


class Receiver:
    """A stand-in for the shop's webhook endpoint, built on the verifier the shop uses."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.app = FastAPI()

        @self.app.post("/webhooks/payments")
        async def receive(request: Request) -> dict[str, str]:
            event = await verified_json(request, WEBHOOK_SECRET, tolerance_seconds=300)
            self.events.append(event)
            return {"status": "accepted"}


@pytest.fixture()
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    recv = Receiver()
    async with serving(recv.app) as url:
        yield recv, f"{url}/webhooks/payments"


async def test_sandbox_delivers_a_signed_event_the_shop_accepts(
    payments: Sandbox, receiver: tuple[Receiver, str]
):
    recv, url = receiver
    await payments.admin.put("/admin/webhooks", json={"url": url})
    response = await payments.admin.post(
        "/card-primary/v1/charges",
        json={
            "amount_minor": 1200,
            "currency": "EUR",
            "token": "tok_visa",
            "order_reference": "ord-webhook",
            "customer_reference": "c",
        },
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 201
    await payments.app.state.webhooks.drain()
    [event] = recv.events
    assert event["type"] == "charge.succeeded"
    assert event["data"]["id"] == response.json()["id"]
    deliveries = (await payments.admin.get("/admin/webhooks")).json()["deliveries"]
    assert deliveries[0]["delivered"] is True


def _event_body() -> bytes:
    return json.dumps({"id": "evt_1", "type": "charge.refunded", "data": {"id": "re_1"}}).encode()


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda body: sign(body, "not-the-secret"), id="wrong-secret"),
        pytest.param(
            lambda body: sign(body, WEBHOOK_SECRET, timestamp=int(time.time()) - 3600), id="expired"
        ),
        pytest.param(
            lambda body: sign(body, WEBHOOK_SECRET, timestamp=int(time.time()) + 3600), id="future"
        ),
        pytest.param(lambda body: sign(body + b" ", WEBHOOK_SECRET), id="tampered-body"),
        pytest.param(lambda body: "t=123", id="no-digest"),
        pytest.param(lambda body: None, id="missing"),
    ],
)
async def test_forged_or_stale_webhooks_get_401_and_change_nothing(
    receiver: tuple[Receiver, str], forge
):
    recv, url = receiver
    body = _event_body()
    header = forge(body)
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers[SIGNATURE_HEADER] = header
    async with httpx.AsyncClient() as client:
        response = await client.post(url, content=body, headers=headers)
    assert response.status_code == 401
    assert recv.events == []


async def test_a_fresh_authentic_delivery_is_accepted(receiver: tuple[Receiver, str]):
    recv, url = receiver
    body = _event_body()
    async with httpx.AsyncClient() as client:
        response = await client.post(
            url, content=body, headers={SIGNATURE_HEADER: sign(body, WEBHOOK_SECRET)}
        )
    assert response.status_code == 200
    assert recv.events == [json.loads(body)]


def test_verify_accepts_any_listed_signature_during_secret_rotation():
    body = b'{"id":"evt_2"}'
    now = 1_700_000_000
    old = sign(body, "old-secret", timestamp=now).split("v1=")[1]
    new = sign(body, "new-secret", timestamp=now).split("v1=")[1]
    header = f"t={now},v1={old},v1={new}"
    verify(body, header, "new-secret", now=now)
    verify(body, header, "old-secret", now=now + 299)
    with pytest.raises(WebhookVerificationError, match="replay window"):
        verify(body, header, "new-secret", now=now + 301)


def test_verify_refuses_without_a_configured_secret():
    body = b"{}"
    with pytest.raises(WebhookVerificationError, match="no webhook secret"):
        verify(body, sign(body, "x"), "")


async def test_sandbox_retries_a_delivery_the_shop_did_not_accept(payments: Sandbox):
    attempts: list[int] = []
    flaky = FastAPI()

    @flaky.post("/hook")
    async def hook() -> dict[str, str]:
        attempts.append(1)
        if len(attempts) < 2:
            raise HTTPException(503, "busy")
        return {"ok": "yes"}

    sender = payments.app.state.webhooks
    sender.first_delay_seconds = 0.01
    async with serving(flaky) as url:
        sender.url = f"{url}/hook"
        sender.emit("charge.succeeded", {"id": "ch_x"})
        await asyncio.wait_for(sender.drain(), timeout=10)
    assert len(attempts) == 2
    assert sender.deliveries[-1].delivered
    assert sender.deliveries[-1].responses == [503, 200]
