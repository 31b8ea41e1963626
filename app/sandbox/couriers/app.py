"""The couriers' HTTP API (one app, one path prefix per courier).

    POST /{courier}/v1/quotes                   rates for a destination and weight
    POST /{courier}/v1/shipments                Idempotency-Key header; label + customs check
    GET  /{courier}/v1/shipments/{tracking}     the shipment
    GET  /{courier}/v1/shipments/{tracking}/events   tracking events so far
    GET  /{courier}/v1/labels/{tracking}        the label (text)
    POST /admin/shipments/{tracking}/advance    move tracking on by one event
    GET|PUT|DELETE /admin/faults[/{courier}], GET|PUT /admin/webhooks, /metrics, /healthz

Tracking also advances by itself every `tracking_step_seconds` (0: only on
demand); each new event is pushed to the webhook URL, signed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.sandbox import metrics
from app.sandbox.couriers.rates import COURIERS, needs_customs, zone_of
from app.sandbox.couriers.shipments import (
    DOMESTIC_STEPS,
    EXPORT_STEPS,
    Shipment,
    new_tracking_number,
)
from app.sandbox.faults import FaultBoard
from app.sandbox.http import error_body, sandbox_app
from app.sandbox.metrics import Outcome
from app.sandbox.webhook_sender import WebhookSender, webhook_admin_router

CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=255)]


class QuoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    destination_country: CountryCode
    postal_code: str = Field(default="", max_length=20)
    weight_grams: int = Field(gt=0, le=1_000_000)


class Recipient(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    line1: str = Field(min_length=1, max_length=200)
    line2: str = Field(default="", max_length=200)
    city: str = Field(min_length=1, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)
    country: CountryCode


class CustomsItemBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hs_code: str
    description: str = Field(min_length=3, max_length=200)
    quantity: int = Field(ge=1, le=10_000)
    value_minor: int = Field(ge=0)
    origin_country: CountryCode

    @field_validator("hs_code")
    @classmethod
    def _hs_code(cls, value: str) -> str:
        digits = re.sub(r"[.\s]", "", value)
        if not re.fullmatch(r"\d{6,10}", digits):
            raise ValueError("an HS code has 6 to 10 digits (dots allowed), e.g. 6109.10")
        return digits


class CustomsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currency: str = Field(pattern=r"^[A-Z]{3}$")
    declared_value_minor: int = Field(gt=0)
    reason: str = Field(default="sale", pattern=r"^(sale|gift|sample|return)$")
    items: list[CustomsItemBody] = Field(min_length=1, max_length=100)


class ShipmentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str
    order_reference: str = Field(min_length=1, max_length=100)
    recipient: Recipient
    weight_grams: int = Field(gt=0, le=1_000_000)
    customs: CustomsBody | None = None


def _customs_problems(body: ShipmentBody, origin: str) -> list[str]:
    destination = body.recipient.country
    if not needs_customs(origin, destination):
        return []
    customs = body.customs
    if customs is None:
        return [f"a customs declaration is required for {origin} -> {destination}"]
    problems = []
    total = sum(item.value_minor for item in customs.items)  # CN23: a line's total value
    if total != customs.declared_value_minor:
        problems.append(
            f"declared_value_minor {customs.declared_value_minor} is not the sum of the item values"
            f" ({total})"
        )
    return problems


def create_app(
    *,
    couriers: Sequence[str] = tuple(COURIERS),
    origin_country: str = "UA",
    currency: str = "EUR",
    tracking_step_seconds: float = 60.0,
    webhook_secret: str = "",
    webhook_url: str | None = None,
    faults: FaultBoard | None = None,
) -> FastAPI:
    """An ASGI app hosting `couriers`; serve it with uvicorn."""
    unknown = set(couriers) - set(COURIERS)
    if unknown:
        raise ValueError(f"unknown couriers {sorted(unknown)}; known: {sorted(COURIERS)}")
    board = faults or FaultBoard(couriers)
    shipments: dict[str, Shipment] = {}
    by_key: dict[tuple[str, str], str] = {}  # (courier, idempotency key) -> tracking number
    webhooks = WebhookSender(webhook_secret, webhook_url)
    step = timedelta(seconds=tracking_step_seconds)

    def push(shipment: Shipment) -> None:
        webhooks.emit(
            "tracking.updated",
            {
                "courier": shipment.courier,
                "tracking_number": shipment.tracking_number,
                "order_reference": shipment.order_reference,
                "event": shipment.events[-1].public(),
            },
        )

    async def advance_by_time() -> None:
        while True:
            await asyncio.sleep(min(1.0, tracking_step_seconds))
            now = datetime.now(UTC)
            for shipment in shipments.values():
                if not shipment.delivered and now - shipment.events[-1].occurred_at >= step:
                    shipment.advance(now)
                    push(shipment)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        ticker = asyncio.create_task(advance_by_time()) if tracking_step_seconds > 0 else None
        yield
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        await webhooks.close()

    app = sandbox_app("Couriers sandbox", board, service_param="courier", lifespan=lifespan)
    app.state.shipments = shipments
    app.state.webhooks = webhooks
    app.include_router(webhook_admin_router(webhooks))

    def served(courier: str) -> str:
        if courier not in couriers:
            raise HTTPException(404, f"unknown courier {courier!r}; known: {list(couriers)}")
        return courier

    def find(courier: str, tracking_number: str) -> Shipment:
        shipment = shipments.get(tracking_number)
        if shipment is None or shipment.courier != courier:
            raise HTTPException(404, f"no shipment {tracking_number!r} at {courier}")
        return shipment

    @app.post("/{courier}/v1/quotes")
    async def quote(courier: str, body: QuoteBody) -> dict[str, Any]:
        spec = COURIERS[served(courier)]
        await board.inject(courier)
        zone = zone_of(origin_country, body.destination_country)
        if zone is None:
            raise HTTPException(422, f"{courier} does not deliver to {body.destination_country}")
        quotes = [
            {
                "service": service.name,
                "amount_minor": service.price(zone, body.weight_grams),
                "currency": currency,
                "estimated_days": service.days[zone],
            }
            for service in spec.services.values()
            if body.weight_grams <= service.max_weight_grams
        ]
        if not quotes:
            raise HTTPException(422, f"{body.weight_grams} g is over {courier}'s weight limit")
        metrics.record(courier, Outcome.OK)
        return {"courier": courier, "zone": zone, "quotes": quotes}

    @app.post("/{courier}/v1/shipments")
    async def create_shipment(
        courier: str, body: ShipmentBody, idempotency_key: IdempotencyKey, request: Request
    ) -> JSONResponse:
        spec = COURIERS[served(courier)]
        await board.inject(courier)
        existing = by_key.get((courier, idempotency_key))
        if existing is not None:
            metrics.record(courier, Outcome.OK)
            shipment = shipments[existing]
            return JSONResponse(
                shipment.public(_label_url(request, shipment)),
                200,
                headers={"Idempotent-Replayed": "true"},
            )
        service = spec.services.get(body.service)
        if service is None:
            raise HTTPException(
                422, f"{courier} has no service {body.service!r}; it has {list(spec.services)}"
            )
        destination = body.recipient.country
        if zone_of(origin_country, destination) is None:
            raise HTTPException(422, f"{courier} does not deliver to {destination}")
        if body.weight_grams > service.max_weight_grams:
            raise HTTPException(422, f"{body.weight_grams} g is over the {service.name} limit")
        problems = _customs_problems(body, origin_country)
        if problems:
            metrics.record(courier, Outcome.REJECTED)
            return JSONResponse(
                error_body("invalid_customs_declaration", "; ".join(problems), problems=problems),
                422,
            )
        export = needs_customs(origin_country, destination)
        shipment = Shipment(
            courier=courier,
            service=service.name,
            tracking_number=new_tracking_number(spec.tracking_prefix),
            order_reference=body.order_reference,
            origin_country=origin_country,
            recipient=body.recipient.model_dump(),
            weight_grams=body.weight_grams,
            customs=body.customs.model_dump() if body.customs and export else None,
            steps=EXPORT_STEPS if export else DOMESTIC_STEPS,
        )
        shipment.advance()
        shipments[shipment.tracking_number] = shipment
        by_key[(courier, idempotency_key)] = shipment.tracking_number
        metrics.record(courier, Outcome.OK)
        push(shipment)
        return JSONResponse(shipment.public(_label_url(request, shipment)), 201)

    @app.get("/{courier}/v1/shipments/{tracking_number}")
    async def get_shipment(courier: str, tracking_number: str, request: Request) -> dict[str, Any]:
        served(courier)
        await board.inject(courier)
        shipment = find(courier, tracking_number)
        metrics.record(courier, Outcome.OK)
        return shipment.public(_label_url(request, shipment))

    @app.get("/{courier}/v1/shipments/{tracking_number}/events")
    async def events(courier: str, tracking_number: str) -> dict[str, Any]:
        served(courier)
        await board.inject(courier)
        shipment = find(courier, tracking_number)
        metrics.record(courier, Outcome.OK)
        return {
            "tracking_number": tracking_number,
            "status": shipment.status,
            "events": [e.public() for e in shipment.events],
        }

    @app.get("/{courier}/v1/labels/{tracking_number}")
    async def label(courier: str, tracking_number: str) -> PlainTextResponse:
        served(courier)
        await board.inject(courier)
        shipment = find(courier, tracking_number)
        metrics.record(courier, Outcome.OK)
        return PlainTextResponse(shipment.label())

    @app.post("/admin/shipments/{tracking_number}/advance")
    async def advance(tracking_number: str) -> dict[str, Any]:
        shipment = shipments.get(tracking_number)
        if shipment is None:
            raise HTTPException(404, f"no shipment {tracking_number!r}")
        event = shipment.advance()
        if event is None:
            raise HTTPException(409, f"{tracking_number} is already delivered")
        push(shipment)
        return event.public()

    return app


def _label_url(request: Request, shipment: Shipment) -> str:
    return str(
        request.url_for("label", courier=shipment.courier, tracking_number=shipment.tracking_number)
    )
