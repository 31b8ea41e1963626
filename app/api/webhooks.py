"""Signed webhooks from the partners: courier tracking updates and payment events.

Each delivery is verified (HMAC-SHA256 over timestamp and body, replay window;
app/partners/webhooks.py) before anything is read from it: a forged, altered,
stale or unsigned one is a 401 and changes nothing. The partner integration
parses the payload into its event; the fulfilment service applies it.
Secrets: PARTNERS_COURIERS_WEBHOOK_SECRET and PARTNERS_PAYMENTS_WEBHOOK_SECRET
(unset: every delivery is refused).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import SecretStr

from app.api.deps import ServicesDep
from app.api.responses import DATABASE_UNAVAILABLE, TOO_LARGE, error, errors
from app.domain import fulfilment
from app.domain.errors import InvalidRequest
from app.partners.couriers import tracking_update_from_webhook
from app.partners.payments.events import payment_event_from_webhook
from app.partners.webhooks import (
    DEFAULT_TOLERANCE_SECONDS,
    SIGNATURE_HEADER,
    WebhookVerificationError,
    verify,
)
from app.wiring import Services

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])

RESPONSES = errors(
    error(400, "authentic, but the body is not a JSON object"),
    error(401, "signature missing, wrong or outside the replay window; nothing done"),
    error(422, "authentic, but not an event this shop understands (invalid_request)"),
    TOO_LARGE,
    DATABASE_UNAVAILABLE,
)
# The body is read raw (the signature is over its bytes), so the document states it here.
SIGNED_DELIVERY: dict[str, Any] = {
    "parameters": [
        {
            "name": SIGNATURE_HEADER,
            "in": "header",
            "required": True,
            "description": "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<body>'>",
            "schema": {"type": "string"},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
}


async def verified_json(
    request: Request, secret: str, *, tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS
) -> dict[str, Any]:
    """The JSON object of an authentic webhook request; 401 (and nothing else done) otherwise."""
    body = await request.body()
    try:
        verify(
            body,
            request.headers.get(SIGNATURE_HEADER),
            secret,
            tolerance_seconds=tolerance_seconds,
        )
    except WebhookVerificationError as exc:
        raise HTTPException(401, f"webhook refused: {exc}") from exc
    try:
        event = json.loads(body)
    except ValueError:
        raise HTTPException(400, "webhook body is not JSON") from None
    if not isinstance(event, dict):
        raise HTTPException(400, "webhook body must be a JSON object")
    return event


async def _verified_event(
    request: Request, secret: SecretStr | None, services: Services
) -> dict[str, Any]:
    return await verified_json(
        request,
        secret.get_secret_value() if secret is not None else "",
        tolerance_seconds=services.partners.webhook_tolerance_seconds,
    )


@router.post(
    "/couriers",
    responses=RESPONSES,
    openapi_extra=SIGNED_DELIVERY,
    summary="Courier tracking.updated",
)
async def courier_event(request: Request, services: ServicesDep) -> dict[str, str]:
    event = await _verified_event(request, services.partners.couriers_webhook_secret, services)
    try:
        courier, tracking_number, reference, update = tracking_update_from_webhook(event)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRequest(f"not a tracking update this shop understands: {exc}") from exc
    return await fulfilment.courier_webhook(
        services.db,
        services.fulfilment,
        event_id=str(event.get("id") or ""),
        courier=courier,
        tracking_number=tracking_number,
        order_reference=reference,
        update_event=update,
    )


@router.post(
    "/payments",
    responses=RESPONSES,
    openapi_extra=SIGNED_DELIVERY,
    summary="charge.succeeded / failed / refunded",
)
async def payment_event(request: Request, services: ServicesDep) -> dict[str, str]:
    event = await _verified_event(request, services.partners.payments_webhook_secret, services)
    try:
        payment_event = payment_event_from_webhook(event)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    return await fulfilment.payment_webhook(services.db, services.fulfilment, payment_event)
