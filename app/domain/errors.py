"""What the shop's services refuse, in the shop's own words.

The domain raises these; it knows nothing of HTTP. Each carries a stable
machine-readable `code` (what a client or a dashboard keys on), a message
for people, and details (ids, the offending SKU, ...). The web edge
(`app/errors.py`) decides once which HTTP status each one becomes.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal the caller can act on. Domain code raises the subclasses below."""

    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        retry_after_seconds: int | None = None,
        replayed: bool = False,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_seconds = retry_after_seconds  # when trying again may work
        self.replayed = replayed  # the answer of an earlier request with the same key
        self.details = details


class NotFound(DomainError):
    code = "not_found"


class Unauthorized(DomainError):
    code = "unauthorized"


class Forbidden(DomainError):
    code = "forbidden"


class StepUpRequired(Forbidden):
    """The risk check asks for the customer's current TOTP code before this payment."""

    code = "step_up_required"


class StepUpFailed(Forbidden):
    code = "step_up_failed"


class StepUpUnavailable(Forbidden):
    code = "step_up_unavailable"


class TotpCodeRejected(Forbidden):
    """The code that should confirm a TOTP enrolment is not the device's current one."""

    code = "totp_code_rejected"


class Conflict(DomainError):
    code = "conflict"


class OutOfStock(Conflict):
    code = "out_of_stock"


class IllegalTransition(Conflict):
    code = "illegal_transition"


class CartChanged(Conflict):
    """The cart changed while it was being checked out; nothing was placed or charged."""

    code = "cart_changed"


class EmptyCart(Conflict):
    """There is nothing in the cart to quote or check out (a state, not a bad request)."""

    code = "cart_empty"


class ShippingOptionUnavailable(Conflict):
    """The chosen shipping option is not among the couriers' current quotes for this cart
    and address (the quote decides, not the request's shape)."""

    code = "shipping_option_unavailable"


class InvalidRequest(DomainError):
    code = "invalid_request"


class CurrencyMismatch(InvalidRequest):
    """Prices in more than one currency would make up one charge."""

    code = "currency_mismatch"


class TooManyAttempts(DomainError):
    code = "too_many_attempts"


class PaymentFailed(DomainError):
    code = "payment_failed"


class ShipmentRefused(DomainError):
    """The courier refused the shipment as asked (address, customs); `problems` names why."""

    code = "shipment_rejected"


class UpstreamUnavailable(DomainError):
    """A partner (payment provider, courier) did not answer; trying again later may work."""

    code = "upstream_unavailable"
