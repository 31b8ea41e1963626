"""Payment provider events, as their (verified) webhooks deliver them.

Parsing the provider's payload is the payment integration's job; the order
service receives a `PaymentEvent` and never sees the provider's JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CHARGE_SUCCEEDED = "charge.succeeded"
CHARGE_FAILED = "charge.failed"
CHARGE_REFUNDED = "charge.refunded"
PAYMENT_EVENTS = (CHARGE_SUCCEEDED, CHARGE_FAILED, CHARGE_REFUNDED)


@dataclass(frozen=True)
class PaymentEvent:
    event_id: str  # the provider's id of this event: a redelivery carries the same one
    kind: str  # one of PAYMENT_EVENTS
    charge_id: str
    # Empty for charge.refunded, which names only the refund.
    provider: str = ""
    order_reference: str = ""
    amount_minor: int = 0
    currency: str = ""


def payment_event_from_webhook(event: dict[str, Any]) -> PaymentEvent:
    """The event of a verified delivery; ValueError names what is missing or unknown."""
    kind, data = event.get("type"), event.get("data")
    if kind not in PAYMENT_EVENTS or not isinstance(data, dict):
        raise ValueError(f"not a payment event this shop understands: {kind!r}")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise ValueError("payment event without an id")
    if kind == CHARGE_REFUNDED:
        return PaymentEvent(event_id=event_id, kind=kind, charge_id=str(data.get("id")))
    try:
        return PaymentEvent(
            event_id=event_id,
            kind=kind,
            charge_id=str(data["id"]),
            provider=str(data["provider"]),
            order_reference=str(data["order_reference"]),
            amount_minor=int(data["amount_minor"]),
            currency=str(data["currency"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"payment event without {exc}") from exc
