"""Shipping quotes and checkout."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from app.api.deps import CartIdHeader, CurrentUser, OptionalUser, ServicesDep, client_ip
from app.db.models import Cart
from app.domain import checkout as checkout_service
from app.domain.cart import resolve_cart
from app.schemas import CheckoutIn, OrderOut, QuoteIn, QuoteOut

router = APIRouter(prefix="/api/checkout", tags=["checkout"])

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
    merge = user_id is not None and header is not None
    session_factory = services.db.write if merge else services.db.read
    async with session_factory() as session:
        cart_id, row = await resolve_cart(
            session,
            user_id=user_id,
            header_cart_id=header,
            create=merge,
            max_line_quantity=services.settings.max_line_quantity,
        )
    return cart_id if isinstance(row, Cart) else None


@router.post(
    "/quote",
    response_model=QuoteOut,
    summary="Shipping options for the cart to an address (from the couriers)",
    responses={503: {"description": "no courier answered"}},
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
    responses={
        200: {
            "model": OrderOut,
            "description": "replay of an earlier checkout with this Idempotency-Key",
        },
        402: {"description": "payment declined (the order is cancelled)"},
        403: {
            "description": "refused by the risk check (fraud_blocked), or it asks for the "
            "customer's TOTP code (step_up_required, step_up_failed, step_up_unavailable); "
            "no order is placed"
        },
        409: {"description": "out of stock"},
        503: {"description": "payment provider unavailable (the order is cancelled)"},
    },
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
    return order
