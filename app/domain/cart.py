"""Carts for guests (by cart id) and users (one each), merged when a guest logs in.

A guest cart exists in the database only once something is put in it, so
browsing creates no rows. A guest cart id is a random UUID; knowing it is what
gives access to the cart, and a user's cart is never reachable by id alone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Cart, CartItem, Product, Stock
from app.db.session import Database
from app.domain.errors import InvalidRequest, NotFound, OutOfStock
from app.schemas import CartLine, CartOut, Money


def new_cart_id() -> str:
    return str(uuid.uuid4())


def parse_cart_id(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return None


async def _user_cart(session: AsyncSession, user_id: int, create: bool) -> Cart | None:
    cart = (await session.execute(select(Cart).where(Cart.user_id == user_id))).scalar_one_or_none()
    if cart is None and create:
        cart = Cart(id=new_cart_id(), user_id=user_id)
        session.add(cart)
        await session.flush()
    return cart


async def _merge(session: AsyncSession, guest: Cart, into: Cart, max_line_quantity: int) -> None:
    guest_items = (
        await session.execute(select(CartItem).where(CartItem.cart_id == guest.id))
    ).scalars()
    for item in guest_items:
        existing = await session.get(CartItem, (into.id, item.product_id))
        if existing is None:
            session.add(
                CartItem(cart_id=into.id, product_id=item.product_id, quantity=item.quantity)
            )
        else:
            existing.quantity = min(max_line_quantity, existing.quantity + item.quantity)
    await session.execute(delete(CartItem).where(CartItem.cart_id == guest.id))
    await session.delete(guest)
    await session.flush()


async def resolve_cart(
    session: AsyncSession,
    *,
    user_id: int | None,
    header_cart_id: str | None,
    create: bool,
    max_line_quantity: int = 100,
) -> tuple[str, Cart | None]:
    """The cart this request acts on: (cart id to report, cart row if it exists).

    With a user and a guest cart id, the guest cart is merged into the user's
    (only when `create`, i.e. in a write transaction).
    """
    guest_id = parse_cart_id(header_cart_id)
    if user_id is not None:
        cart = await _user_cart(session, user_id, create)
        if create and guest_id is not None and cart is not None and guest_id != cart.id:
            guest = await session.get(Cart, guest_id)
            if guest is not None and guest.user_id is None:
                await _merge(session, guest, cart, max_line_quantity)
        return (cart.id if cart else new_cart_id()), cart
    if guest_id is not None:
        guest = await session.get(Cart, guest_id)
        if guest is not None and guest.user_id is not None:
            guest = None  # a user's cart is not reachable without that user's token
            guest_id = None
        if guest is None and create:
            guest = Cart(id=guest_id or new_cart_id())
            session.add(guest)
            await session.flush()
        return (guest.id if guest else guest_id or new_cart_id()), guest
    if create:
        guest = Cart(id=new_cart_id())
        session.add(guest)
        await session.flush()
        return guest.id, guest
    return new_cart_id(), None


async def product_by_sku(session: AsyncSession, sku: str) -> Product:
    product = (
        await session.execute(select(Product).where(Product.sku == sku))
    ).scalar_one_or_none()
    if product is None:
        raise NotFound(f"no product with SKU {sku!r}", sku=sku)
    return product


async def available_quantity(session: AsyncSession, product_id: int) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(Stock.quantity), 0)).where(Stock.product_id == product_id)
    )
    return int(total or 0)


async def set_quantity(session: AsyncSession, cart: Cart, sku: str, quantity: int) -> None:
    product = await product_by_sku(session, sku)
    available = await available_quantity(session, product.id)
    if quantity > available:
        raise OutOfStock(f"only {available} of {sku} in stock", sku=sku, available=available)
    item = await session.get(CartItem, (cart.id, product.id))
    if item is None:
        session.add(CartItem(cart_id=cart.id, product_id=product.id, quantity=quantity))
    else:
        item.quantity = quantity


async def remove_item(session: AsyncSession, cart: Cart | None, sku: str) -> None:
    product = await product_by_sku(session, sku)
    if cart is None:
        return
    await session.execute(
        delete(CartItem).where(CartItem.cart_id == cart.id, CartItem.product_id == product.id)
    )


async def cart_lines(session: AsyncSession, cart_id: str) -> list[tuple[CartItem, Product]]:
    rows = await session.execute(
        select(CartItem, Product)
        .join(Product, Product.id == CartItem.product_id)
        .where(CartItem.cart_id == cart_id)
        .order_by(Product.sku)
    )
    return [(item, product) for item, product in rows.tuples()]


async def cart_view(session: AsyncSession, cart_id: str, currency: str) -> CartOut:
    lines = await cart_lines(session, cart_id)
    out_lines = [
        CartLine(
            sku=product.sku,
            name=product.name,
            quantity=item.quantity,
            unit_price=Money(amount=product.price_minor, currency=product.currency),
            line_total=Money(amount=product.price_minor * item.quantity, currency=product.currency),
        )
        for item, product in lines
    ]
    return CartOut(
        cart_id=cart_id,
        items=out_lines,
        item_count=sum(line.quantity for line in out_lines),
        subtotal=Money(amount=sum(line.line_total.amount for line in out_lines), currency=currency),
    )


# --- the cart service: each call is one transaction -----------------------------------------


@dataclass(frozen=True)
class CartOwner:
    """Who acts on a cart: a user (by token), a guest (by cart id), or both (merge)."""

    user_id: int | None
    header_cart_id: str | None

    @property
    def merges(self) -> bool:
        return self.user_id is not None and parse_cart_id(self.header_cart_id) is not None


async def view_cart(
    db: Database, owner: CartOwner, *, currency: str, max_line_quantity: int
) -> tuple[str, CartOut]:
    """(cart id, cart); merging a guest cart into the user's writes, anything else only reads."""
    session_factory = db.write if owner.merges else db.read
    async with session_factory() as session:
        cart_id, _ = await resolve_cart(
            session,
            user_id=owner.user_id,
            header_cart_id=owner.header_cart_id,
            create=owner.merges,
            max_line_quantity=max_line_quantity,
        )
        return cart_id, await cart_view(session, cart_id, currency)


async def put_item(
    db: Database,
    owner: CartOwner,
    sku: str,
    quantity: int,
    *,
    currency: str,
    max_line_quantity: int,
) -> tuple[str, CartOut]:
    """Set a line's quantity (creating the cart if needed); (cart id, cart)."""
    if quantity > max_line_quantity:
        raise InvalidRequest(f"quantity: at most {max_line_quantity} units of one SKU per order")
    async with db.write() as session:
        cart_id, row = await resolve_cart(
            session,
            user_id=owner.user_id,
            header_cart_id=owner.header_cart_id,
            create=True,
            max_line_quantity=max_line_quantity,
        )
        assert row is not None
        await set_quantity(session, row, sku, quantity)
        await session.flush()
        return cart_id, await cart_view(session, cart_id, currency)


async def delete_item(
    db: Database, owner: CartOwner, sku: str, *, currency: str, max_line_quantity: int
) -> tuple[str, CartOut]:
    async with db.write() as session:
        cart_id, row = await resolve_cart(
            session,
            user_id=owner.user_id,
            header_cart_id=owner.header_cart_id,
            create=False,
            max_line_quantity=max_line_quantity,
        )
        await remove_item(session, row, sku)
        await session.flush()
        return cart_id, await cart_view(session, cart_id, currency)


async def checkout_cart_id(db: Database, owner: CartOwner, *, max_line_quantity: int) -> str | None:
    """The id of the cart to quote or check out (a guest cart merged first), None if none."""
    session_factory = db.write if owner.merges else db.read
    async with session_factory() as session:
        cart_id, row = await resolve_cart(
            session,
            user_id=owner.user_id,
            header_cart_id=owner.header_cart_id,
            create=owner.merges,
            max_line_quantity=max_line_quantity,
        )
    return cart_id if isinstance(row, Cart) else None
