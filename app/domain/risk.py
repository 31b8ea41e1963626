"""The risk check that runs before every payment.

Checkout depends only on the `RiskAssessor` protocol. Production wires
`EngineRiskAssessor`, an adapter over the partners' rule engine
(app/partners/fraud, history in SQL so every worker and host shares it):
`allow` goes on to payment, `challenge` asks for the customer's TOTP code
(step-up) first, `block` refuses the checkout. `AllowAll` remains for
callers that screen nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from app.partners.fraud import RiskEngine, RiskRequest


class RiskDecision(StrEnum):
    ALLOW = "allow"
    CHALLENGE = "challenge"  # ask for more proof: the customer's current TOTP code
    BLOCK = "block"


@dataclass(frozen=True)
class RiskContext:
    user_id: int
    email: str
    account_created_at: datetime
    client_ip: str | None
    amount_minor: int
    currency: str
    destination_country: str
    billing_country: str
    payment_channel: str
    payment_token: str
    item_count: int
    order_reference: str = ""


@dataclass(frozen=True)
class RiskVerdict:
    decision: RiskDecision
    score: int = 0
    reasons: tuple[str, ...] = ()  # rule codes that fired (details stay in the risk history)


class RiskAssessor(Protocol):
    async def assess(self, context: RiskContext) -> RiskVerdict:
        """Decide once per checkout attempt; the implementation records the decision."""
        ...


class AllowAll:
    """No fraud screening: every checkout may go on to payment."""

    async def assess(self, context: RiskContext) -> RiskVerdict:
        return RiskVerdict(RiskDecision.ALLOW)


def customer_reference(user_id: int) -> str:
    """How partners (payment providers, the risk history) name a customer."""
    return f"user-{user_id}"


class EngineRiskAssessor:
    """RiskAssessor over the partners' RiskEngine (which records and counts every decision)."""

    def __init__(self, engine: RiskEngine) -> None:
        self._engine = engine

    async def assess(self, context: RiskContext) -> RiskVerdict:
        assessment = await self._engine.assess(
            RiskRequest(
                customer_reference=customer_reference(context.user_id),
                account_created_at=context.account_created_at,
                amount_minor=context.amount_minor,
                currency=context.currency,
                payment_token=context.payment_token,
                ip_address=context.client_ip or "unknown",
                billing_country=context.billing_country,
                shipping_country=context.destination_country,
                order_reference=context.order_reference,
            )
        )
        return RiskVerdict(
            RiskDecision(assessment.decision.value),
            score=assessment.score,
            reasons=tuple(assessment.reason_codes),
        )
