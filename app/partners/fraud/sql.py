"""The risk history in SQL: every assessment with its score, decision and reasons.

One row per assessment (`risk_assessments`); the velocity rules count rows per
account, token fingerprint and IP over a recent window, hence one index each.
A withdrawn attempt (it ended before any charge) keeps its rows, with
`withdrawn_at` set, and is left out of what the rules read.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Index,
    Integer,
    String,
    case,
    cast,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base
from app.db.types import UTCDateTime
from app.partners.fraud.engine import HistoryRecord, RiskDecision


class RiskAssessmentRow(Base):
    __tablename__ = "risk_assessments"
    __table_args__ = (
        Index("ix_risk_assessments_customer", "customer_reference", "assessed_at"),
        Index("ix_risk_assessments_token", "token_fingerprint", "assessed_at"),
        Index("ix_risk_assessments_ip", "ip_address", "assessed_at"),
        Index("ix_risk_assessments_reference", "order_reference"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    order_reference: Mapped[str] = mapped_column(String(100))
    customer_reference: Mapped[str] = mapped_column(String(100))
    token_fingerprint: Mapped[str] = mapped_column(String(64))
    ip_address: Mapped[str] = mapped_column(String(45))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    decision: Mapped[str] = mapped_column(String(10))
    score: Mapped[int] = mapped_column(Integer)
    reasons: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    assessed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


_attempt = case(
    (RiskAssessmentRow.order_reference == "", cast(RiskAssessmentRow.id, String)),
    else_=RiskAssessmentRow.order_reference,
)


class SqlRiskHistory:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def count_attempts(
        self,
        *,
        since: datetime,
        customer_reference: str | None = None,
        token_fingerprint: str | None = None,
        ip_address: str | None = None,
        other_than: str = "",
    ) -> int:
        keys = {
            RiskAssessmentRow.customer_reference: customer_reference,
            RiskAssessmentRow.token_fingerprint: token_fingerprint,
            RiskAssessmentRow.ip_address: ip_address,
        }
        given = [(column, value) for column, value in keys.items() if value is not None]
        if len(given) != 1:
            raise ValueError("count_attempts takes exactly one key")
        column, value = given[0]
        where = [
            column == value,
            RiskAssessmentRow.assessed_at >= since,
            RiskAssessmentRow.withdrawn_at.is_(None),
        ]
        if other_than:
            where.append(RiskAssessmentRow.order_reference != other_than)
        async with self._sessions() as session:
            # One checkout attempt assessed twice (challenged, then sent again with the
            # customer's code) is one attempt: count distinct references (an assessment
            # without a reference is an attempt of its own).
            count = await session.scalar(select(func.count(func.distinct(_attempt))).where(*where))
        return int(count or 0)

    async def usual_amounts(self, customer_reference: str, currency: str, limit: int) -> list[int]:
        async with self._sessions() as session:
            amounts = (
                await session.scalars(
                    select(RiskAssessmentRow.amount_minor)
                    .where(
                        RiskAssessmentRow.customer_reference == customer_reference,
                        RiskAssessmentRow.currency == currency,
                        RiskAssessmentRow.decision != RiskDecision.BLOCK.value,
                        RiskAssessmentRow.withdrawn_at.is_(None),
                    )
                    .order_by(RiskAssessmentRow.assessed_at.desc(), RiskAssessmentRow.id.desc())
                    .limit(limit)
                )
            ).all()
        return [int(a) for a in amounts]

    async def record(self, record: HistoryRecord) -> None:
        async with self._sessions.begin() as session:
            session.add(
                RiskAssessmentRow(
                    order_reference=record.order_reference,
                    customer_reference=record.customer_reference,
                    token_fingerprint=record.token_fingerprint,
                    ip_address=record.ip_address,
                    amount_minor=record.amount_minor,
                    currency=record.currency,
                    decision=record.decision.value,
                    score=record.score,
                    reasons=[
                        {"rule": h.rule, "points": h.points, "detail": h.detail}
                        for h in record.reasons
                    ],
                    assessed_at=record.assessed_at,
                )
            )

    async def withdraw(self, order_reference: str, at: datetime) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(RiskAssessmentRow)
                .where(
                    RiskAssessmentRow.order_reference == order_reference,
                    RiskAssessmentRow.withdrawn_at.is_(None),
                )
                .values(withdrawn_at=at)
            )
