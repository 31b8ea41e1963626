"""Orders: the state machine, the moves inside one transaction, and the views.

    pending_payment -> paid -> packed -> shipped -> delivered
          |             |        |                     |
          +-> cancelled <+--------+                     +-> refunded
                        +-> refunded

A move to cancelled or refunded that gives money back passes through
`refund_pending` while the provider confirms the refund.
Any move not drawn here is refused (`IllegalTransition`). Becoming paid
counts the sales and enqueues the confirmation mail in the transaction of the
state change; cancelling an unpaid order gives its units back to the bins
they came from. The moves that reach partners (refunds, labels, tracking,
payment and courier events) are in `app/domain/fulfilment.py`.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Order, OrderAllocation, OrderEvent, Product, Stock
from app.db.session import Database
from app.db.types import utcnow
from app.domain.errors import IllegalTransition, NotFound
from app.domain.mail import OrderMailer
from app.schemas import Money, OrderEventOut, OrderLineOut, OrderList, OrderOut

log = logging.getLogger("shop.orders")


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    # Cancelled or refunded by the shop, the refund not yet confirmed by the provider
    # (`refund_to` says which it becomes); fulfilment and the reconciler finish it.
    REFUND_PENDING = "refund_pending"
    PACKED = "packed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


S = OrderStatus
ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING_PAYMENT: frozenset({S.PAID, S.CANCELLED}),
    S.PAID: frozenset({S.PACKED, S.CANCELLED, S.REFUNDED}),
    S.PACKED: frozenset({S.SHIPPED, S.CANCELLED}),
    S.SHIPPED: frozenset({S.DELIVERED}),
    S.DELIVERED: frozenset({S.REFUNDED}),
    S.REFUND_PENDING: frozenset(),  # only the provider's confirmation moves it on
    S.CANCELLED: frozenset(),
    S.REFUNDED: frozenset(),
}
MONEY_TAKEN = frozenset({S.PAID, S.PACKED, S.DELIVERED})
IN_WAREHOUSE = frozenset({S.PENDING_PAYMENT, S.PAID, S.PACKED})
CUSTOMER_CANCELLABLE = frozenset({S.PENDING_PAYMENT, S.PAID})


def check_transition(order: Order, to: OrderStatus) -> None:
    current = OrderStatus(order.status)
    if to not in ALLOWED[current]:
        allowed = ", ".join(sorted(ALLOWED[current])) or "none (final state)"
        raise IllegalTransition(
            f"order {order.id} is {current}; it cannot become {to} (allowed next: {allowed})",
            order_id=order.id,
            status=str(current),
            requested=str(to),
        )


def record_event(
    session: AsyncSession, order: Order, to: OrderStatus, actor: str, note: str = ""
) -> None:
    session.add(
        OrderEvent(
            order_id=order.id, from_status=order.status, to_status=to, actor=actor, note=note
        )
    )
    order.status = to


async def restock(session: AsyncSession, order_id: int) -> None:
    allocations = (
        await session.execute(
            select(OrderAllocation)
            .where(OrderAllocation.order_id == order_id)
            .order_by(OrderAllocation.product_id, OrderAllocation.warehouse_id)
        )
    ).scalars()
    for allocation in allocations:
        await session.execute(
            update(Stock)
            .where(
                Stock.product_id == allocation.product_id,
                Stock.warehouse_id == allocation.warehouse_id,
            )
            .values(quantity=Stock.quantity + allocation.quantity)
            .execution_options(synchronize_session=False)
        )


async def load_order(
    session: AsyncSession, order_id: int, user_id: int | None, *, lock: bool = False
) -> Order:
    """The order (the customer's own when `user_id` is given), row-locked if asked; else 404."""
    stmt = select(Order).where(Order.id == order_id)
    if lock:
        stmt = stmt.with_for_update()
    if user_id is not None:
        stmt = stmt.where(Order.user_id == user_id)
    order = (await session.execute(stmt)).scalar_one_or_none()
    if order is None:
        raise NotFound(f"no order {order_id}")
    return order


async def mark_paid(
    session: AsyncSession,
    order: Order,
    mailer: OrderMailer,
    *,
    provider: str,
    reference: str | None,
    actor: str,
    note: str,
) -> None:
    """pending_payment -> paid inside `session`: sales counts, and the confirmation mail."""
    order.payment_provider = provider
    order.payment_reference = reference
    record_event(session, order, S.PAID, actor, note[:400])
    for line in order.lines:
        await session.execute(
            update(Product)
            .where(Product.id == line.product_id)
            .values(sales_count=Product.sales_count + line.quantity)
            .execution_options(synchronize_session=False)
        )
    order.updated_at = utcnow()
    await mailer.order_paid(session, order)


async def cancel_unpaid(
    session: AsyncSession, order: Order, *, provider: str | None, actor: str, note: str
) -> None:
    """pending_payment -> cancelled inside `session`, the stock given back."""
    if provider is not None:
        order.payment_provider = provider
    record_event(session, order, S.CANCELLED, actor, note[:400])
    await restock(session, order.id)
    order.updated_at = utcnow()


def order_view(order: Order) -> OrderOut:
    def money(amount: int) -> Money:
        return Money(amount=amount, currency=order.currency)

    return OrderOut(
        id=order.id,
        reference=order.reference,
        status=order.status,
        lines=[
            OrderLineOut(
                sku=line.sku,
                name=line.name,
                quantity=line.quantity,
                unit_price=money(line.unit_price_minor),
                hs_code=line.hs_code,
            )
            for line in order.lines
        ],
        subtotal=money(order.subtotal_minor),
        shipping=money(order.shipping_minor),
        total=money(order.total_minor),
        shipping_option=order.shipping_option,
        shipping_address=order.shipping_address,
        payment_channel=order.payment_channel,
        payment_provider=order.payment_provider,
        courier=order.courier,
        tracking_number=order.tracking_number,
        created_at=order.created_at,
        updated_at=order.updated_at,
        events=[
            OrderEventOut(
                from_status=e.from_status,
                to_status=e.to_status,
                actor=e.actor,
                note=e.note,
                at=e.created_at,
            )
            for e in order.events
        ],
    )


async def get_order(db: Database, order_id: int, user_id: int | None) -> Order:
    async with db.read() as session:
        return await load_order(session, order_id, user_id)


async def list_orders(
    db: Database, *, user_id: int | None, status: str | None, page: int, page_size: int
) -> OrderList:
    stmt = select(Order)
    if user_id is not None:
        stmt = stmt.where(Order.user_id == user_id)
    if status is not None:
        stmt = stmt.where(Order.status == status)
    async with db.read() as session:
        total = (
            await session.execute(select(func.count()).select_from(stmt.subquery()))
        ).scalar_one()
        orders = (
            await session.execute(
                stmt.order_by(Order.created_at.desc(), Order.id.desc())
                .limit(page_size)
                .offset((page - 1) * page_size)
            )
        ).scalars()
        items = [order_view(o) for o in orders]
    return OrderList(items=items, page=page, page_size=page_size, total=total)
