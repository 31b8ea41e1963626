"""The risk engine: rules over the request and its history -> score -> decision.

Each rule that fires adds points and a reason; the sum decides: at or above
`block_score` the payment is blocked, at or above `challenge_score` the
customer must pass a step-up (TOTP) first, below that it is allowed. Every
assessment is recorded with its reasons (the history the next one reads) and
counted in `shop_fraud_decisions_total{decision}`.

Velocity counts earlier assessed attempts (blocked ones too: card testing
shows up as many attempts, not many orders), except those the shop withdrew
because they ended before any charge: a customer retrying while the shop's
database refused orders tested no card (the db-slow drill blocked exactly such
customers). Card tokens are kept only as a
fingerprint, so the history holds nothing a provider would call card data.
"""

from __future__ import annotations

import hashlib
import logging
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from app.partners import metrics
from app.partners.interfaces import RiskAssessment, RiskDecision, RiskRequest, RuleHit
from app.partners.settings import FraudSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HistoryRecord:
    """What the history keeps of one assessment."""

    customer_reference: str
    token_fingerprint: str
    ip_address: str
    amount_minor: int
    currency: str
    order_reference: str
    decision: RiskDecision
    score: int
    reasons: tuple[RuleHit, ...]
    assessed_at: datetime


class RiskHistory(Protocol):
    async def count_attempts(
        self,
        *,
        since: datetime,
        customer_reference: str | None = None,
        token_fingerprint: str | None = None,
        ip_address: str | None = None,
        other_than: str = "",
    ) -> int:
        """Attempts (distinct references) since `since` matching the one given key,
        not counting the attempt `other_than` (the one being assessed again) nor
        withdrawn attempts."""
        ...

    async def usual_amounts(self, customer_reference: str, currency: str, limit: int) -> list[int]:
        """Amounts of the customer's latest allowed or challenged payments in `currency`
        (withdrawn attempts left out)."""
        ...

    async def record(self, record: HistoryRecord) -> None: ...

    async def withdraw(self, order_reference: str, at: datetime) -> None:
        """Mark every assessment of the attempt `order_reference` withdrawn (once)."""
        ...


def token_fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


@dataclass
class InMemoryRiskHistory:
    """RiskHistory in one process's memory (tests); the shop uses `SqlRiskHistory`."""

    records: list[HistoryRecord] = field(default_factory=list)
    withdrawn: dict[str, datetime] = field(default_factory=dict)

    async def count_attempts(
        self,
        *,
        since: datetime,
        customer_reference: str | None = None,
        token_fingerprint: str | None = None,
        ip_address: str | None = None,
        other_than: str = "",
    ) -> int:
        keys = [k for k in (customer_reference, token_fingerprint, ip_address) if k is not None]
        if len(keys) != 1:
            raise ValueError("count_attempts takes exactly one key")
        return len(
            {
                # one attempt assessed twice (step-up) counts once; no reference: its own
                r.order_reference or f"#{index}"
                for index, r in enumerate(self.records)
                if r.assessed_at >= since
                and r.order_reference not in self.withdrawn
                and not (other_than and r.order_reference == other_than)
                and (
                    r.customer_reference == customer_reference
                    or r.token_fingerprint == token_fingerprint
                    or r.ip_address == ip_address
                )
            }
        )

    async def usual_amounts(self, customer_reference: str, currency: str, limit: int) -> list[int]:
        matching = [
            r.amount_minor
            for r in self.records
            if r.customer_reference == customer_reference
            and r.currency == currency
            and r.decision != RiskDecision.BLOCK
            and r.order_reference not in self.withdrawn
        ]
        return matching[-limit:]

    async def record(self, record: HistoryRecord) -> None:
        self.records.append(record)

    async def withdraw(self, order_reference: str, at: datetime) -> None:
        self.withdrawn.setdefault(order_reference, at)


class RiskEngine:
    """The shop's RiskAssessor: rules over the request and the shared history."""

    def __init__(self, settings: FraudSettings, history: RiskHistory) -> None:
        if settings.challenge_score >= settings.block_score:
            raise ValueError("challenge_score must be below block_score")
        self._cfg = settings
        self._history = history
        metrics.declare_fraud_series()

    async def assess(self, request: RiskRequest, *, now: datetime | None = None) -> RiskAssessment:
        at = now or datetime.now(UTC)
        fingerprint = token_fingerprint(request.payment_token)
        hits = [
            *await self._velocity(request, fingerprint, at),
            *await self._unusual_amount(request),
            *self._country_mismatch(request),
            *self._new_account_large_order(request, at),
        ]
        score = sum(hit.points for hit in hits)
        if score >= self._cfg.block_score:
            decision = RiskDecision.BLOCK
        elif score >= self._cfg.challenge_score:
            decision = RiskDecision.CHALLENGE
        else:
            decision = RiskDecision.ALLOW
        assessment = RiskAssessment(decision, score, tuple(hits))
        await self._history.record(
            HistoryRecord(
                customer_reference=request.customer_reference,
                token_fingerprint=fingerprint,
                ip_address=request.ip_address,
                amount_minor=request.amount_minor,
                currency=request.currency,
                order_reference=request.order_reference,
                decision=decision,
                score=score,
                reasons=assessment.reasons,
                assessed_at=at,
            )
        )
        metrics.FRAUD_DECISIONS_TOTAL.labels(decision=decision.value).inc()
        log.info(
            "risk %s for %s: %s (score %d: %s)",
            request.order_reference or "-",
            request.customer_reference,
            decision.value,
            score,
            ", ".join(assessment.reason_codes) or "no rule fired",
        )
        return assessment

    async def withdraw(self, order_reference: str, *, now: datetime | None = None) -> None:
        if not order_reference:  # an assessment without a reference is no attempt to name
            return
        await self._history.withdraw(order_reference, now or datetime.now(UTC))
        log.info("risk %s withdrawn: it ended before any charge", order_reference)

    async def _velocity(self, req: RiskRequest, fingerprint: str, at: datetime) -> list[RuleHit]:
        since = at - timedelta(minutes=self._cfg.velocity_window_minutes)
        window = f"{self._cfg.velocity_window_minutes} min"
        checks = (
            ("velocity_account", {"customer_reference": req.customer_reference},
             self._cfg.max_orders_per_account, "this account"),
            ("velocity_payment_token", {"token_fingerprint": fingerprint},
             self._cfg.max_orders_per_payment_token, "this payment token"),
            ("velocity_ip", {"ip_address": req.ip_address},
             self._cfg.max_orders_per_ip, f"IP {req.ip_address}"),
        )  # fmt: skip
        hits = []
        for rule, key, limit, what in checks:
            count = await self._history.count_attempts(
                since=since, other_than=req.order_reference, **key
            )
            if count >= limit:
                hits.append(
                    RuleHit(
                        rule,
                        self._cfg.velocity_points,
                        f"{count} payment attempts from {what} in {window} (limit {limit})",
                    )
                )
        return hits

    async def _unusual_amount(self, req: RiskRequest) -> list[RuleHit]:
        amounts = await self._history.usual_amounts(req.customer_reference, req.currency, 50)
        if len(amounts) < self._cfg.usual_amount_min_orders:
            return []
        usual = statistics.median(amounts)
        if req.amount_minor <= usual * self._cfg.usual_amount_factor:
            return []
        return [
            RuleHit(
                "amount_unusual",
                self._cfg.unusual_amount_points,
                f"{req.amount_minor} {req.currency} is over {self._cfg.usual_amount_factor:g}x "
                f"the customer's usual {usual:g}",
            )
        ]

    def _country_mismatch(self, req: RiskRequest) -> list[RuleHit]:
        if req.billing_country.upper() == req.shipping_country.upper():
            return []
        return [
            RuleHit(
                "country_mismatch",
                self._cfg.country_mismatch_points,
                f"billing country {req.billing_country} differs from shipping country "
                f"{req.shipping_country}",
            )
        ]

    def _new_account_large_order(self, req: RiskRequest, at: datetime) -> list[RuleHit]:
        age = at - req.account_created_at
        if age >= timedelta(days=self._cfg.new_account_days):
            return []
        if req.amount_minor < self._cfg.large_order_minor:
            return []
        return [
            RuleHit(
                "new_account_large_order",
                self._cfg.new_account_large_order_points,
                f"account is {age.days} days old and the order is {req.amount_minor} "
                f"{req.currency} (large from {self._cfg.large_order_minor})",
            )
        ]
