"""What the shop needs from its external partners, and nothing about how they do it.

The checkout and order services depend only on these protocols: payments,
delivery, mail and the risk check. The
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
    ERROR = "error"  # no provider charged: every one refused to answer (outage, 5xx, ...)
    # A provider may have charged (it timed out or dropped the connection after the request
    # was sent, and could not be asked since): charge nowhere else; the reconciler settles it.
    UNKNOWN = "unknown"


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


class ChargeState(StrEnum):
    """What one provider holds for an idempotency key, when asked."""

    CAPTURED = "captured"  # a successful charge
    DECLINED = "declined"  # a declined charge: nothing was taken
    ABSENT = "absent"  # no charge with this key: the provider never charged it
    UNKNOWN = "unknown"  # the provider could not be asked (outage, timeout, circuit open)


@dataclass(frozen=True)
class ChargeLookup:
    provider: str
    state: ChargeState
    provider_reference: str | None = None  # the charge id, when there is a charge
    amount_minor: int | None = None
    currency: str | None = None


class PaymentGateway(Protocol):
    async def charge(self, request: ChargeRequest) -> ChargeResult: ...

    async def lookup(self, *, channel: PaymentChannel, idempotency_key: str) -> list[ChargeLookup]:
        """What every provider of `channel` holds for `idempotency_key`, one entry each."""
        ...

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


# --- risk -------------------------------------------------------------------


class RiskDecision(StrEnum):
    ALLOW = "allow"
    CHALLENGE = "challenge"  # ask for the customer's current TOTP code (step-up), then proceed
    BLOCK = "block"


@dataclass(frozen=True)
class RiskRequest:
    """One checkout attempt as the risk check sees it."""

    customer_reference: str
    account_created_at: datetime
    amount_minor: int
    currency: str
    payment_token: str
    ip_address: str
    billing_country: str
    shipping_country: str
    # The checkout attempt: one attempt assessed again (after a step-up) counts once.
    order_reference: str = ""


@dataclass(frozen=True)
class RuleHit:
    rule: str
    points: int
    detail: str


@dataclass(frozen=True)
class RiskAssessment:
    decision: RiskDecision
    score: int
    reasons: tuple[RuleHit, ...] = ()

    @property
    def reason_codes(self) -> list[str]:
        return [hit.rule for hit in self.reasons]


class RiskAssessor(Protocol):
    async def assess(self, request: RiskRequest) -> RiskAssessment:
        """Decide once per checkout attempt; the implementation records the decision."""
        ...

    async def withdraw(self, order_reference: str) -> None:
        """The attempt ended before any charge (the shop failed it): it tested no card,
        so it stops counting toward velocity. Its assessments stay in the history."""
        ...
