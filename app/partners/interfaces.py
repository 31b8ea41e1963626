"""What the shop needs from its external partners, and nothing about how they do it.

The checkout and order services depend only on these protocols. The
implementations that talk to real providers (and, in tests and the lab, to the
sandboxes in app/sandbox/) live beside this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

# --- payments ---------------------------------------------------------------


class PaymentChannel(StrEnum):
    CARD = "card"
    WALLET = "wallet"
    CRYPTO = "crypto"


class PaymentStatus(StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"  # the provider said no (insufficient funds, ...): do not retry
    ERROR = "error"  # no answer we can trust (outage, timeout, 5xx) after retries/failover


@dataclass(frozen=True)
class ChargeRequest:
    idempotency_key: str  # one per checkout attempt; a retry with the same key never charges twice
    order_reference: str
    amount_minor: int
    currency: str
    channel: PaymentChannel
    payment_token: str  # a provider token, never a card number (PCI DSS scope stays out)
    customer_reference: str


@dataclass(frozen=True)
class ChargeResult:
    status: PaymentStatus
    provider: str
    provider_reference: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class RefundResult:
    succeeded: bool
    provider_reference: str | None = None
    reason: str | None = None


class PaymentGateway(Protocol):
    async def charge(self, request: ChargeRequest) -> ChargeResult: ...

    async def refund(
        self,
        *,
        provider: str,
        provider_reference: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
    ) -> RefundResult: ...


# --- delivery ---------------------------------------------------------------


@dataclass(frozen=True)
class CustomsItem:
    hs_code: str
    description: str
    quantity: int
    value_minor: int
    origin_country: str


@dataclass(frozen=True)
class Parcel:
    weight_grams: int
    destination_country: str  # ISO 3166-1 alpha-2
    postal_code: str
    declared_value_minor: int
    currency: str
    items: tuple[CustomsItem, ...] = ()


@dataclass(frozen=True)
class ShippingQuote:
    courier: str
    service: str
    amount_minor: int
    currency: str
    estimated_days: int

    @property
    def option_id(self) -> str:
        return f"{self.courier}:{self.service}"


@dataclass(frozen=True)
class Shipment:
    courier: str
    tracking_number: str
    label_url: str | None = None


@dataclass(frozen=True)
class TrackingEvent:
    status: str  # e.g. "label_created", "in_transit", "customs_cleared", "delivered"
    occurred_at: datetime
    location: str = ""
    description: str = ""


class CourierGateway(Protocol):
    async def quote(self, parcel: Parcel) -> list[ShippingQuote]: ...

    async def create_shipment(
        self, *, option_id: str, parcel: Parcel, order_reference: str, address: dict[str, str]
    ) -> Shipment: ...

    async def tracking(self, *, courier: str, tracking_number: str) -> list[TrackingEvent]: ...


# --- mail -------------------------------------------------------------------


@dataclass(frozen=True)
class MailMessage:
    to: str
    subject: str
    body_text: str
    kind: str = "order_confirmation"  # order_confirmation, shipping_update, ...
    headers: dict[str, str] = field(default_factory=dict)


class MailTransport(Protocol):
    async def send(self, message: MailMessage) -> None:
        """Deliver one message; raise on any failure (the outbox retries)."""
        ...
