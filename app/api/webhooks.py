"""Signed webhooks from the partners: courier tracking updates and payment events.

Each delivery is verified (HMAC-SHA256 over timestamp and body, replay window;
app/partners/webhooks.py) before anything is read from it: a forged, altered,
stale or unsigned one is a 401 and changes nothing. Secrets:
PARTNERS_COURIERS_WEBHOOK_SECRET and PARTNERS_PAYMENTS_WEBHOOK_SECRET (unset:
every delivery is refused).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import SecretStr

from app.api.deps import ServicesDep
from app.domain import orders
from app.partners.webhooks import verified_json
from app.wiring import Services

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "signature missing, wrong or outside the replay window; nothing done"},
    422: {"description": "authentic, but not an event this shop understands"},
}


async def _verified_event(request: Request, secret: SecretStr | None, services: Services) -> Any:
    """The delivery's JSON if its signature is good and fresh; 401 and nothing else if not."""
    return await verified_json(
        request,
        secret.get_secret_value() if secret is not None else "",
        tolerance_seconds=services.partners.webhook_tolerance_seconds,
    )


@router.post("/couriers", responses=RESPONSES, summary="Courier tracking.updated")
async def courier_event(request: Request, services: ServicesDep) -> dict[str, str]:
    event = await _verified_event(request, services.partners.couriers_webhook_secret, services)
    return await orders.courier_webhook(services.db, services.fulfilment, event)


@router.post("/payments", responses=RESPONSES, summary="charge.succeeded / failed / refunded")
async def payment_event(request: Request, services: ServicesDep) -> dict[str, str]:
    event = await _verified_event(request, services.partners.payments_webhook_secret, services)
    return await orders.payment_webhook(services.db, services.fulfilment, event)
