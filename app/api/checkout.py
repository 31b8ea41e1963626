"""Shipping quotes and checkout."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from app.api.deps import CartIdHeader, CurrentUser, OptionalUser, ServicesDep, client_ip
from app.api.responses import OPTIONAL_LOGIN, SIGNED_IN, THROTTLED, error, errors
from app.domain import cart
from app.domain import checkout as checkout_service
from app.schemas import CheckoutIn, OrderOut, QuoteIn, QuoteOut

router = APIRouter(prefix="/api/checkout", tags=["checkout"], responses=SIGNED_IN)
EMPTY_CART = "the cart is empty (cart_empty)"

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="one per checkout attempt; a retry with the same key returns the same order",
    ),
]


async def _cart_id(services: ServicesDep, user_id: int | None, header: str | None) -> str | None:
    """The id of the cart to check out, merging a guest cart first when both are given."""
    return await cart.checkout_cart_id(
        services.db,
        cart.CartOwner(user_id=user_id, header_cart_id=header),
        max_line_quantity=services.settings.max_line_quantity,
    )


@router.post(
    "/quote",
    response_model=QuoteOut,
    summary="Shipping options for the cart to an address (from the couriers)",
    responses=errors(
        error(409, EMPTY_CART),
        error(429, "too many quotes from this client (too_many_attempts); see Retry-After"),
        error(503, "no courier answered (upstream_unavailable), or the database"),
    ),
    openapi_extra=OPTIONAL_LOGIN,
)
async def quote(
    body: QuoteIn, services: ServicesDep, user: OptionalUser, x_cart_id: CartIdHeader = None
) -> QuoteOut:
    cart_id = await _cart_id(services, user.id if user else None, x_cart_id)
    return await checkout_service.quote(services.checkout, cart_id, body.country, body.postal_code)


@router.post(
    "",
    status_code=201,
    response_model=OrderOut,
    responses=errors(
        {
            200: {
                "model": OrderOut,
                "description": "replay of an earlier checkout with this Idempotency-Key (a "
                "refused one is replayed with its original status and body; "
                "Idempotent-Replayed: true)",
            },
            202: {
                "model": OrderOut,
                "description": "placed, but the payment provider's answer was lost: the order "
                "stays pending_payment (stock held) until the reconciler settles it",
            },
        },
        error(402, "payment declined (payment_failed; the order is cancelled)"),
        error(
            403,
            "refused by the risk check (fraud_blocked), or it asks for the customer's TOTP "
            "code (step_up_required, step_up_failed, step_up_unavailable); no order is placed",
        ),
        error(
            409,
            f"{EMPTY_CART}, out of stock (out_of_stock), the cart changed during checkout "
            "(cart_changed; nothing placed or charged, the cart kept), or the shipping option "
            "is not offered for this cart and address (shipping_option_unavailable)",
        ),
        error(422, "invalid, or prices in another currency (currency_mismatch)"),
        THROTTLED,
        error(
            503,
            "payment provider (upstream_unavailable; the order is cancelled) or couriers "
            "unavailable, or the database",
        ),
    ),
)
async def checkout(
    body: CheckoutIn,
    request: Request,
    response: Response,
    services: ServicesDep,
    user: CurrentUser,
    idempotency_key: IdempotencyKey,
    x_cart_id: CartIdHeader = None,
) -> OrderOut:
    cart_id = await _cart_id(services, user.id, x_cart_id)
    order, replayed = await checkout_service.checkout(
        services.checkout,
        user=user,
        cart_id=cart_id,
        body=body,
        idempotency_key=idempotency_key,
        client_ip=client_ip(request),
    )
    if replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    elif order.status == "pending_payment":
        response.status_code = 202
    return order
