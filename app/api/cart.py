"""The cart: guests by X-Cart-Id, users by token; a request with both merges the guest cart."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.catalog import SkuPath
from app.api.deps import CartIdHeader, OptionalUser, ServicesDep
from app.domain import cart
from app.errors import InvalidRequest
from app.schemas import CartOut, CartQuantityIn

router = APIRouter(prefix="/api/cart", tags=["cart"])


@router.get("", response_model=CartOut)
async def get_cart(
    response: Response, services: ServicesDep, user: OptionalUser, x_cart_id: CartIdHeader = None
) -> CartOut:
    merge = user is not None and cart.parse_cart_id(x_cart_id) is not None
    session_factory = services.db.write if merge else services.db.read
    async with session_factory() as session:
        cart_id, _ = await cart.resolve_cart(
            session,
            user_id=user.id if user else None,
            header_cart_id=x_cart_id,
            create=merge,
            max_line_quantity=services.settings.max_line_quantity,
        )
        view = await cart.cart_view(session, cart_id, services.settings.currency)
    response.headers["X-Cart-Id"] = cart_id
    return view


@router.put("/items/{sku}", response_model=CartOut)
async def put_item(
    sku: SkuPath,
    body: CartQuantityIn,
    response: Response,
    services: ServicesDep,
    user: OptionalUser,
    x_cart_id: CartIdHeader = None,
) -> CartOut:
    limit = services.settings.max_line_quantity
    if body.quantity > limit:
        raise InvalidRequest(f"quantity: at most {limit} units of one SKU per order")
    async with services.db.write() as session:
        cart_id, row = await cart.resolve_cart(
            session,
            user_id=user.id if user else None,
            header_cart_id=x_cart_id,
            create=True,
            max_line_quantity=limit,
        )
        assert row is not None
        await cart.set_quantity(session, row, sku, body.quantity)
        await session.flush()
        view = await cart.cart_view(session, cart_id, services.settings.currency)
    response.headers["X-Cart-Id"] = cart_id
    return view


@router.delete("/items/{sku}", response_model=CartOut)
async def delete_item(
    sku: SkuPath,
    response: Response,
    services: ServicesDep,
    user: OptionalUser,
    x_cart_id: CartIdHeader = None,
) -> CartOut:
    async with services.db.write() as session:
        cart_id, row = await cart.resolve_cart(
            session,
            user_id=user.id if user else None,
            header_cart_id=x_cart_id,
            create=False,
            max_line_quantity=services.settings.max_line_quantity,
        )
        await cart.remove_item(session, row, sku)
        await session.flush()
        view = await cart.cart_view(session, cart_id, services.settings.currency)
    response.headers["X-Cart-Id"] = cart_id
    return view
