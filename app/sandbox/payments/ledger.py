"""The payment providers' books: charges and refunds, with idempotency keys.

Pure bookkeeping, no HTTP: the app module turns requests into these calls.
A key is remembered with a fingerprint of the request it came with; the same
key with the same request replays the first answer, with a different request
it is refused, and two requests with one key never both charge (they are
serialised per key).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from app.sandbox.payments.card_data import contains_card_number

# Test tokens with a fixed answer, in the spirit of the card networks' test cards.
DECLINE_TOKENS: dict[str, str] = {
    "tok_chargeDeclined": "generic_decline",
    "tok_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "tok_chargeDeclinedExpiredCard": "expired_card",
    "tok_chargeDeclinedFraudulent": "fraudulent",
    "tok_chargeDeclinedProcessingError": "processing_error",
    "wallet_insufficientBalance": "insufficient_funds",
    "wallet_accountLocked": "account_locked",
    "crypto_underpaid": "underpaid",
    "crypto_expiredQuote": "quote_expired",
}
INJECTED_DECLINE_CODE = "do_not_honor"

TOKEN_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{2,127}$")


class IdempotencyConflict(Exception):
    """The key was used before with a different request."""


class RawCardData(ValueError):
    """Something that looks like a card number was sent where a token belongs."""


def check_token(token: str) -> None:
    if contains_card_number(token):
        raise RawCardData("raw card numbers are not accepted; send a payment token")
    if not TOKEN_PATTERN.fullmatch(token):
        raise ValueError("token must be 3-128 letters, digits, '_' or '-', starting with a letter")


def fingerprint(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass
class Charge:
    id: str
    provider: str
    amount_minor: int
    currency: str
    order_reference: str
    customer_reference: str
    token_last4: str  # enough to tell tokens apart in a listing; the token itself is not kept
    status: str  # succeeded | declined
    decline_code: str | None
    created: int
    refunded_minor: int = 0
    idempotency_key: str = ""

    def public(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Refund:
    id: str
    charge_id: str
    amount_minor: int
    currency: str
    status: str
    created: int

    def public(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Remembered:
    fingerprint: str
    status_code: int
    body: dict[str, Any]


@dataclass
class ProviderBook:
    """One provider's charges, refunds and remembered idempotency keys."""

    name: str
    charges: dict[str, Charge] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)
    _answers: dict[str, _Remembered] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def lock_for(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def remembered(self, key: str, request_fingerprint: str) -> tuple[int, dict[str, Any]] | None:
        answer = self._answers.get(key)
        if answer is None:
            return None
        if answer.fingerprint != request_fingerprint:
            raise IdempotencyConflict(
                f"idempotency key {key!r} was already used with a different request"
            )
        return answer.status_code, answer.body

    def remember(
        self, key: str, request_fingerprint: str, status: int, body: dict[str, Any]
    ) -> None:
        self._answers[key] = _Remembered(request_fingerprint, status, body)

    def add_charge(
        self,
        *,
        key: str,
        amount_minor: int,
        currency: str,
        order_reference: str,
        customer_reference: str,
        token: str,
        decline_code: str | None,
    ) -> Charge:
        charge = Charge(
            id=f"ch_{secrets.token_hex(10)}",
            provider=self.name,
            amount_minor=amount_minor,
            currency=currency,
            order_reference=order_reference,
            customer_reference=customer_reference,
            token_last4=token[-4:],
            status="declined" if decline_code else "succeeded",
            decline_code=decline_code,
            created=int(time.time()),
            idempotency_key=key,
        )
        self.charges[charge.id] = charge
        return charge

    def add_refund(self, charge: Charge, amount_minor: int) -> Refund:
        if charge.status != "succeeded":
            raise ValueError(f"charge {charge.id} was declined; there is nothing to refund")
        refundable = charge.amount_minor - charge.refunded_minor
        if amount_minor > refundable:
            raise ValueError(
                f"refund of {amount_minor} exceeds the {refundable} still refundable on {charge.id}"
            )
        charge.refunded_minor += amount_minor
        refund = Refund(
            id=f"re_{secrets.token_hex(10)}",
            charge_id=charge.id,
            amount_minor=amount_minor,
            currency=charge.currency,
            status="succeeded",
            created=int(time.time()),
        )
        self.refunds[refund.id] = refund
        return refund
