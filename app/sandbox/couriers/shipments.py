"""Shipments and their tracking events, advancing one step at a time."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DOMESTIC_STEPS = ("label_created", "picked_up", "in_transit", "out_for_delivery", "delivered")
EXPORT_STEPS = (
    "label_created",
    "picked_up",
    "in_transit",
    "customs_cleared",
    "out_for_delivery",
    "delivered",
)
DESCRIPTIONS = {
    "label_created": "Shipment information received",
    "picked_up": "Parcel picked up from the sender",
    "in_transit": "Parcel in transit",
    "customs_cleared": "Cleared by customs at destination",
    "out_for_delivery": "Out for delivery",
    "delivered": "Delivered",
}


@dataclass
class Event:
    status: str
    occurred_at: datetime
    location: str
    description: str

    def public(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "occurred_at": self.occurred_at.isoformat(),
            "location": self.location,
            "description": self.description,
        }


@dataclass
class Shipment:
    courier: str
    service: str
    tracking_number: str
    order_reference: str
    origin_country: str
    recipient: dict[str, str]
    weight_grams: int
    customs: dict[str, Any] | None
    steps: tuple[str, ...]
    events: list[Event] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.events[-1].status

    @property
    def delivered(self) -> bool:
        return self.status == "delivered"

    def _location(self, status: str) -> str:
        destination = f"{self.recipient['city']}, {self.recipient['country']}"
        if status in ("label_created", "picked_up"):
            return self.origin_country
        if status == "in_transit":
            return f"{self.courier} hub, {self.origin_country}"
        if status == "customs_cleared":
            return f"customs, {self.recipient['country']}"
        return destination

    def advance(self, now: datetime | None = None) -> Event | None:
        """Append the next event; None when already delivered."""
        if self.events and self.delivered:
            return None
        status = self.steps[len(self.events)]
        event = Event(
            status=status,
            occurred_at=now or datetime.now(UTC),
            location=self._location(status),
            description=DESCRIPTIONS[status],
        )
        self.events.append(event)
        return event

    def public(self, label_url: str) -> dict[str, Any]:
        return {
            "courier": self.courier,
            "service": self.service,
            "tracking_number": self.tracking_number,
            "order_reference": self.order_reference,
            "status": self.status,
            "label_url": label_url,
            "customs": self.customs,
        }

    def label(self) -> str:
        r = self.recipient
        lines = [
            f"{self.courier.upper()} {self.service.upper()}",
            f"TRACKING {self.tracking_number}",
            f"TO: {r['name']}",
            f"    {r['line1']}",
            *([f"    {r['line2']}"] if r.get("line2") else []),
            f"    {r['postal_code']} {r['city']}",
            f"    {r['country']}",
            f"WEIGHT {self.weight_grams} g  ORDER {self.order_reference}",
        ]
        if self.customs:
            lines.append(
                f"CN23 {self.customs['declared_value_minor']} {self.customs['currency']}"
                f" HS {','.join(i['hs_code'] for i in self.customs['items'])}"
            )
        return "\n".join(lines) + "\n"


def new_tracking_number(prefix: str) -> str:
    return f"{prefix}{secrets.randbelow(10**10):010d}"
