"""The payment providers' HTTP API (one app, one path prefix per provider).

POST /{provider}/v1/charges        Idempotency-Key header; 201 succeeded, 402 declined
GET  /{provider}/v1/charges        ?order_reference=...&idempotency_key=... (what it holds)
GET  /{provider}/v1/charges/{id}
POST /{provider}/v1/refunds        Idempotency-Key header; 201
GET|PUT|DELETE /admin/faults[/{provider}]   fault knobs (decline_rate, capture_timeout_rate)
GET|PUT /admin/webhooks            webhook target and deliveries
GET /metrics, GET /healthz

With an API key, every /{provider}/v1 call needs `Authorization: Bearer <key>`
(401 otherwise, as a provider answers); admin and health routes need none.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app.sandbox import metrics
from app.sandbox.faults import FaultBoard
from app.sandbox.http import error_body, sandbox_app
from app.sandbox.metrics import Outcome
from app.sandbox.payments.ledger import (
    DECLINE_TOKENS,
    INJECTED_DECLINE_CODE,
    IdempotencyConflict,
    ProviderBook,
    check_token,
    fingerprint,
)
from app.sandbox.webhook_sender import WebhookSender, webhook_admin_router

PROVIDERS: tuple[str, ...] = ("card-primary", "card-secondary", "wallet", "crypto")

IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=255)]


class ChargeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_minor: int = Field(gt=0, le=100_000_000_00)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    token: str = Field(min_length=1, max_length=256)
    order_reference: str = Field(min_length=1, max_length=100)
    customer_reference: str = Field(min_length=1, max_length=100)


class RefundBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    charge_id: str = Field(min_length=1, max_length=64)
    amount_minor: int | None = Field(default=None, gt=0)


def create_app(
    *,
    providers: Sequence[str] = PROVIDERS,
    webhook_secret: str = "",
    webhook_url: str | None = None,
    faults: FaultBoard | None = None,
    api_key: str | None = None,
) -> FastAPI:
    """An ASGI app hosting `providers`; serve it with uvicorn."""
    board = faults or FaultBoard(providers, declining_services=providers)
    books = {name: ProviderBook(name) for name in providers}
    webhooks = WebhookSender(webhook_secret, webhook_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await webhooks.close()

    app = sandbox_app(
        "Payment providers sandbox", board, service_param="provider", lifespan=lifespan
    )
    app.state.books = books
    app.state.webhooks = webhooks
    app.include_router(webhook_admin_router(webhooks))

    async def authorised(authorization: Annotated[str | None, Header()] = None) -> None:
        if api_key is None:
            return
        expected = f"Bearer {api_key}".encode()
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected):
            raise HTTPException(  # counted as rejected by sandbox_app's handler
                401, "invalid API key", headers={"WWW-Authenticate": 'Bearer realm="payments"'}
            )

    api = APIRouter(dependencies=[Depends(authorised)])

    def book(provider: str) -> ProviderBook:
        if provider not in books:
            raise HTTPException(404, f"unknown provider {provider!r}; known: {list(books)}")
        return books[provider]

    def conflict(provider: str, exc: IdempotencyConflict) -> JSONResponse:
        metrics.record(provider, Outcome.REJECTED)
        return JSONResponse(error_body("idempotency_conflict", str(exc)), 409)

    @api.post("/{provider}/v1/charges")
    async def charge(
        provider: str, body: ChargeBody, idempotency_key: IdempotencyKey
    ) -> JSONResponse:
        ledger = book(provider)
        await board.inject(provider)
        try:
            check_token(body.token)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        request_fp = fingerprint(body.model_dump())
        async with ledger.lock_for(idempotency_key):
            try:
                replay = ledger.remembered(idempotency_key, request_fp)
            except IdempotencyConflict as exc:
                return conflict(provider, exc)
            if replay is None:
                decline_code = DECLINE_TOKENS.get(body.token)
                if decline_code is None and board.should_decline(provider):
                    decline_code = INJECTED_DECLINE_CODE
                new_charge = ledger.add_charge(
                    key=idempotency_key,
                    amount_minor=body.amount_minor,
                    currency=body.currency,
                    order_reference=body.order_reference,
                    customer_reference=body.customer_reference,
                    token=body.token,
                    decline_code=decline_code,
                )
                status_code = 402 if decline_code else 201
                answer = new_charge.public()
                ledger.remember(idempotency_key, request_fp, status_code, answer)
            else:
                status_code, answer = replay
        if replay is None:
            webhooks.emit("charge.failed" if status_code == 402 else "charge.succeeded", answer)
        # Booked (or replayed) and only now may the answer be lost: capture_timeout_rate.
        await board.inject_after_capture(provider)
        metrics.record(provider, Outcome.OK if status_code < 300 else Outcome.DECLINED)
        headers = {"Idempotent-Replayed": "true"} if replay is not None else None
        return JSONResponse(answer, status_code, headers=headers)

    @api.get("/{provider}/v1/charges")
    async def list_charges(
        provider: str, order_reference: str | None = None, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """The provider's charges, filtered; by idempotency key: at most one (empty: absent)."""
        ledger = book(provider)
        await board.inject(provider)
        items = [
            c.public()
            for c in ledger.charges.values()
            if order_reference in (None, c.order_reference)
            and idempotency_key in (None, c.idempotency_key)
        ]
        metrics.record(provider, Outcome.OK)
        return {"items": items}

    @api.get("/{provider}/v1/charges/{charge_id}")
    async def get_charge(provider: str, charge_id: str) -> dict[str, Any]:
        ledger = book(provider)
        await board.inject(provider)
        if charge_id not in ledger.charges:
            raise HTTPException(404, f"no charge {charge_id!r} at {provider}")
        metrics.record(provider, Outcome.OK)
        return ledger.charges[charge_id].public()

    @api.post("/{provider}/v1/refunds")
    async def refund(
        provider: str, body: RefundBody, idempotency_key: IdempotencyKey
    ) -> JSONResponse:
        ledger = book(provider)
        await board.inject(provider)
        request_fp = fingerprint({"refund": body.model_dump()})
        async with ledger.lock_for(f"refund:{idempotency_key}"):
            try:
                replay = ledger.remembered(f"refund:{idempotency_key}", request_fp)
            except IdempotencyConflict as exc:
                return conflict(provider, exc)
            if replay is not None:
                metrics.record(provider, Outcome.OK)
                return JSONResponse(replay[1], replay[0], headers={"Idempotent-Replayed": "true"})
            original = ledger.charges.get(body.charge_id)
            if original is None:
                raise HTTPException(404, f"no charge {body.charge_id!r} at {provider}")
            amount = body.amount_minor or original.amount_minor - original.refunded_minor
            try:
                new_refund = ledger.add_refund(original, amount)
            except ValueError as exc:
                raise HTTPException(422, str(exc)) from exc
            answer = new_refund.public()
            ledger.remember(f"refund:{idempotency_key}", request_fp, 201, answer)
        metrics.record(provider, Outcome.OK)
        webhooks.emit("charge.refunded", {**answer, "charge": original.public()})
        return JSONResponse(answer, 201)

    app.include_router(api)
    return app
