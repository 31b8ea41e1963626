"""Orders: the state machine, its side effects (refund, restock, shipment), and views.

    pending_payment -> paid -> packed -> shipped -> delivered
          |             |        |                     |
          +-> cancelled <+--------+                     +-> refunded
                        +-> refunded

Cancelling or refunding an order that was paid refunds the payment first; an
order that leaves the warehouse flow before shipping gives its units back to
the bins they came from. Any other move is refused with 409.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Order, OrderAllocation, OrderEvent, Stock
from app.db.session import Database
from app.domain.cache import CatalogCache
from app.domain.catalog import invalidate_products
from app.errors import IllegalTransition, NotFound, UpstreamUnavailable
from app.observability import metrics
from app.partners.interfaces import CourierGateway, Parcel, PaymentGateway
from app.schemas import Money, OrderEventOut, OrderLineOut, OrderList, OrderOut

log = logging.getLogger("shop.orders")


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
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
    S.CANCELLED: frozenset(),
    S.REFUNDED: frozenset(),
}
MONEY_TAKEN = frozenset({S.PAID, S.PACKED, S.DELIVERED})
IN_WAREHOUSE = frozenset({S.PENDING_PAYMENT, S.PAID, S.PACKED})
CUSTOMER_CANCELLABLE = frozenset({S.PENDING_PAYMENT, S.PAID})


@dataclass(frozen=True)
class Fulfilment:
    payments: PaymentGateway
    courier: CourierGateway
    cache: CatalogCache


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


async def _locked_order(session: AsyncSession, order_id: int, user_id: int | None) -> Order:
    stmt = select(Order).where(Order.id == order_id).with_for_update()
    if user_id is not None:
        stmt = stmt.where(Order.user_id == user_id)
    order = (await session.execute(stmt)).scalar_one_or_none()
    if order is None:
        raise NotFound(f"no order {order_id}")
    return order


def _parcel(order: Order) -> Parcel:
    return Parcel(
        weight_grams=sum(line.weight_grams * line.quantity for line in order.lines),
        destination_country=str(order.shipping_address.get("country", "")),
        postal_code=str(order.shipping_address.get("postal_code", "")),
        declared_value_minor=order.subtotal_minor,
        currency=order.currency,
    )


async def transition(
    db: Database,
    fulfilment: Fulfilment,
    order_id: int,
    to: OrderStatus,
    *,
    actor: str,
    note: str = "",
    user_id: int | None = None,
) -> OrderOut:
    """Move an order to `to`, with its side effects, or refuse with 409."""
    async with db.write() as session:
        order = await _locked_order(session, order_id, user_id)
        if user_id is not None and to == S.CANCELLED and order.status not in CUSTOMER_CANCELLABLE:
            raise IllegalTransition(
                f"order {order.id} is {order.status}; only orders that are not yet packed can be "
                "cancelled by the customer",
                order_id=order.id,
                status=order.status,
                requested=str(to),
            )
        check_transition(order, to)
        current = OrderStatus(order.status)
        if to in (S.CANCELLED, S.REFUNDED) and current in MONEY_TAKEN and order.payment_reference:
            result = await fulfilment.payments.refund(
                provider=order.payment_provider or "",
                provider_reference=order.payment_reference,
                amount_minor=order.total_minor,
                currency=order.currency,
                idempotency_key=f"refund-{order.reference}",
            )
            if not result.succeeded:
                raise UpstreamUnavailable(
                    "the payment provider did not confirm the refund: "
                    f"{result.reason or 'no reason'}",
                    order_id=order.id,
                )
            note = note or f"refunded ({result.provider_reference or 'no reference'})"
        restocked = to in (S.CANCELLED, S.REFUNDED) and current in IN_WAREHOUSE
        if restocked:
            await restock(session, order.id)
        if to == S.SHIPPED:
            shipment = await fulfilment.courier.create_shipment(
                option_id=order.shipping_option,
                parcel=_parcel(order),
                order_reference=order.reference,
                address={k: str(v) for k, v in order.shipping_address.items() if v is not None},
            )
            order.courier = shipment.courier
            order.tracking_number = shipment.tracking_number
        record_event(session, order, to, actor, note)
        await session.flush()
        await session.refresh(order, ["events", "updated_at"])
        view = order_view(order)
    if restocked:
        await invalidate_products(fulfilment.cache, *(line.sku for line in view.lines))
    if to in (S.CANCELLED, S.REFUNDED, S.PAID):
        metrics.orders_total.labels(str(to)).inc()
    return view


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
        stmt = select(Order).where(Order.id == order_id)
        if user_id is not None:
            stmt = stmt.where(Order.user_id == user_id)
        order = (await session.execute(stmt)).scalar_one_or_none()
    if order is None:
        raise NotFound(f"no order {order_id}")
    return order


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
