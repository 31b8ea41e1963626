"""The risk check that runs before every payment.

Checkout depends only on the `RiskAssessor` protocol. The default allows
everything; the fraud engine of app/partners plugs in through
app/wiring.py without a change here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class RiskDecision(StrEnum):
    ALLOW = "allow"
    CHALLENGE = "challenge"  # ask for more proof (not offered by checkout yet: treated as block)
    BLOCK = "block"


@dataclass(frozen=True)
class RiskContext:
    user_id: int
    email: str
    account_age_seconds: float
    client_ip: str | None
    amount_minor: int
    currency: str
    destination_country: str
    payment_channel: str
    payment_token: str
    item_count: int


@dataclass(frozen=True)
class RiskVerdict:
    decision: RiskDecision
    reason: str = ""


class RiskAssessor(Protocol):
    async def assess(self, context: RiskContext) -> RiskVerdict: ...


class AllowAll:
    """No fraud screening: every checkout may go on to payment."""

    async def assess(self, context: RiskContext) -> RiskVerdict:
        return RiskVerdict(RiskDecision.ALLOW)
