"""The cart: guests by X-Cart-Id, users by token; a request with both merges the guest cart."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.catalog import SkuPath
from app.api.deps import CartIdHeader, OptionalUser, ServicesDep
from app.api.responses import NOT_FOUND, OPTIONAL_LOGIN, SIGNED_IN, error, errors
from app.domain import cart
from app.schemas import CartOut, CartQuantityIn

# Guests too: a token is optional here (but a bad one is a 401).
router = APIRouter(prefix="/api/cart", tags=["cart"], responses=SIGNED_IN)


def _owner(user: OptionalUser, x_cart_id: str | None) -> cart.CartOwner:
    return cart.CartOwner(user_id=user.id if user else None, header_cart_id=x_cart_id)


@router.get("", response_model=CartOut, openapi_extra=OPTIONAL_LOGIN)
async def get_cart(
    response: Response, services: ServicesDep, user: OptionalUser, x_cart_id: CartIdHeader = None
) -> CartOut:
    cart_id, view = await cart.view_cart(
        services.db,
        _owner(user, x_cart_id),
        currency=services.settings.currency,
        max_line_quantity=services.settings.max_line_quantity,
    )
    response.headers["X-Cart-Id"] = cart_id
    return view


@router.put(
    "/items/{sku}",
    response_model=CartOut,
    responses=errors(NOT_FOUND, error(409, "not that many in stock (out_of_stock)")),
    openapi_extra=OPTIONAL_LOGIN,
)
async def put_item(
    sku: SkuPath,
    body: CartQuantityIn,
    response: Response,
    services: ServicesDep,
    user: OptionalUser,
    x_cart_id: CartIdHeader = None,
) -> CartOut:
    cart_id, view = await cart.put_item(
        services.db,
        _owner(user, x_cart_id),
        sku,
        body.quantity,
        currency=services.settings.currency,
        max_line_quantity=services.settings.max_line_quantity,
    )
    response.headers["X-Cart-Id"] = cart_id
    return view


@router.delete(
    "/items/{sku}", response_model=CartOut, responses=NOT_FOUND, openapi_extra=OPTIONAL_LOGIN
)
async def delete_item(
    sku: SkuPath,
    response: Response,
    services: ServicesDep,
    user: OptionalUser,
    x_cart_id: CartIdHeader = None,
) -> CartOut:
    cart_id, view = await cart.delete_item(
        services.db,
        _owner(user, x_cart_id),
        sku,
        currency=services.settings.currency,
        max_line_quantity=services.settings.max_line_quantity,
    )
    response.headers["X-Cart-Id"] = cart_id
    return view
