"""Fraud and risk control: a rule-based score per payment -> allow, challenge or block."""

from app.partners.fraud.engine import (
    HistoryRecord,
    InMemoryRiskHistory,
    RiskAssessment,
    RiskDecision,
    RiskEngine,
    RiskHistory,
    RiskRequest,
    RuleHit,
    token_fingerprint,
)

__all__ = [
    "HistoryRecord",
    "InMemoryRiskHistory",
    "RiskAssessment",
    "RiskDecision",
    "RiskEngine",
    "RiskHistory",
    "RiskRequest",
    "RuleHit",
    "token_fingerprint",
]
