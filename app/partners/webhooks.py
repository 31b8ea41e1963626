"""Signed webhooks between partners and the shop: HMAC-SHA256 over timestamp and body.

A partner sends `Webhook-Signature: t=<unix seconds>,v1=<hex digest>` where the
digest is HMAC-SHA256(secret, f"{t}." + raw body). The shop accepts a delivery
only if one `v1` digest matches and `t` lies within the replay window, so a
captured delivery cannot be replayed later and a forged one never matches.
Several `v1` entries may be present while a secret is being rotated.

The shop checks deliveries with `verify()` (its web edge, app/api/webhooks.py,
answers 401 when it raises); `sign()` is the same scheme for whoever delivers
to the shop. The sandboxes sign with their own implementation of the scheme,
so a bug here cannot hide from the tests.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Webhook-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


class WebhookVerificationError(Exception):
    """The delivery is not authentic or is too old; the message says which."""


def _digest(payload: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(payload: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """The signature header value for `payload`."""
    if not secret:
        raise ValueError("a webhook secret is required to sign")
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={_digest(payload, secret, ts)}"


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    digests: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise WebhookVerificationError("signature timestamp is not an integer") from None
        elif key == "v1":
            digests.append(value)
    if timestamp is None:
        raise WebhookVerificationError("signature header has no timestamp")
    if not digests:
        raise WebhookVerificationError("signature header has no v1 signature")
    return timestamp, digests


def verify(
    payload: bytes,
    header: str | None,
    secret: str,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise WebhookVerificationError unless `header` authenticates `payload` right now."""
    if not secret:
        raise WebhookVerificationError("no webhook secret is configured")
    if not header:
        raise WebhookVerificationError(f"missing {SIGNATURE_HEADER} header")
    timestamp, digests = _parse_header(header)
    expected = _digest(payload, secret, timestamp)
    # Compared as bytes: a header may carry any character, and compare_digest refuses
    # non-ASCII text (TypeError) where a forged signature must simply not match.
    wanted = expected.encode()
    if not any(hmac.compare_digest(wanted, c.encode("utf-8", "replace")) for c in digests):
        raise WebhookVerificationError("signature does not match")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise WebhookVerificationError(
            f"signature timestamp is outside the {tolerance_seconds}s replay window"
        )
