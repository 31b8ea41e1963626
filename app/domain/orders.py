"""Orders: the state machine, its side effects (refund, restock, shipment, mail), and views.

    pending_payment -> paid -> packed -> shipped -> delivered
          |             |        |                     |
          +-> cancelled <+--------+                     +-> refunded
                        +-> refunded

Cancelling or refunding an order that was paid refunds the payment first; an
order that leaves the warehouse flow before shipping gives its units back to
the bins they came from. Any other move is refused with 409.

Packing buys the label: the shipment is created at the courier (with the
customs declaration of an export parcel) before the order becomes `packed`,
outside any database transaction, keyed on the order so a retry never buys
two. The courier's tracking events then move the order on: any movement of
the parcel makes it `shipped`, `delivered` makes it `delivered`; they arrive
by pull (reading the tracking) or by push (the courier's signed webhook).
Becoming paid enqueues the confirmation mail and becoming shipped the shipping
mail, each in the transaction of the state change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Order, OrderAllocation, OrderEvent, Product, Stock, utcnow
from app.db.session import Database
from app.domain.cache import CatalogCache
from app.domain.catalog import invalidate_products
from app.domain.mail import OrderMailer
from app.errors import (
    IllegalTransition,
    InvalidRequest,
    NotFound,
    ShipmentRefused,
    UpstreamUnavailable,
)
from app.observability import metrics
from app.partners.couriers import CourierUnavailable, ShipmentRejected, tracking_update_from_webhook
from app.partners.interfaces import (
    CourierGateway,
    CustomsItem,
    Parcel,
    PaymentGateway,
    Shipment,
    TrackingEvent,
)
from app.schemas import (
    Money,
    OrderEventOut,
    OrderLineOut,
    OrderList,
    OrderOut,
    TrackingEventOut,
    TrackingOut,
)

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


# Courier tracking statuses that mean the parcel has left the warehouse.
MOVING = ("picked_up", "in_transit", "customs_cleared", "out_for_delivery")
DELIVERED_STATUS = "delivered"


@dataclass(frozen=True)
class Fulfilment:
    payments: PaymentGateway
    courier: CourierGateway
    cache: CatalogCache
    mailer: OrderMailer


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


async def _order(
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


async def _locked_order(session: AsyncSession, order_id: int, user_id: int | None) -> Order:
    return await _order(session, order_id, user_id, lock=True)


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


async def _parcel(session: AsyncSession, order: Order) -> Parcel:
    """The order's parcel with the customs items (CN23) of its lines."""
    origins = dict(
        (
            await session.execute(
                select(Product.id, Product.origin_country).where(
                    Product.id.in_([line.product_id for line in order.lines])
                )
            )
        ).all()
    )
    items = tuple(
        CustomsItem(
            hs_code=line.hs_code,
            description=line.name,
            quantity=line.quantity,
            value_minor=line.unit_price_minor * line.quantity,
            origin_country=origins.get(line.product_id, ""),
        )
        for line in order.lines
    )
    return Parcel(
        weight_grams=sum(line.weight_grams * line.quantity for line in order.lines),
        destination_country=str(order.shipping_address.get("country", "")),
        postal_code=str(order.shipping_address.get("postal_code", "")),
        declared_value_minor=sum(item.value_minor for item in items),
        currency=order.currency,
        items=items,
    )


def _recipient(order: Order) -> dict[str, str]:
    a = order.shipping_address
    fields = {
        "name": a.get("full_name"),
        "line1": a.get("line1"),
        "line2": a.get("line2"),
        "city": a.get("city"),
        "postal_code": a.get("postal_code"),
        "country": a.get("country"),
        "phone": a.get("phone"),
    }
    return {k: str(v) for k, v in fields.items() if v is not None}


async def _buy_label(
    db: Database, courier: CourierGateway, order_id: int, to: OrderStatus, user_id: int | None
) -> Shipment | None:
    """The order's shipment, created at the courier if this move needs one and it has none.

    Runs before the transition's transaction (no database lock is held while the
    courier answers); the courier call is keyed on the order, so a retry or a
    concurrent second attempt gets the same shipment back.
    """
    async with db.read() as session:
        order = await _order(session, order_id, user_id)
        check_transition(order, to)
        if order.tracking_number is not None:
            return None
        parcel = await _parcel(session, order)
    try:
        return await courier.create_shipment(
            option_id=order.shipping_option,
            parcel=parcel,
            order_reference=order.reference,
            address=_recipient(order),
        )
    except ShipmentRejected as exc:
        raise ShipmentRefused(str(exc), order_id=order.id, problems=exc.problems) from exc
    except CourierUnavailable as exc:
        raise UpstreamUnavailable(
            f"the courier could not create the shipment ({exc}); the order is unchanged; try again",
            order_id=order.id,
        ) from exc


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
    shipment = None
    if to in (S.PACKED, S.SHIPPED):
        shipment = await _buy_label(db, fulfilment.courier, order_id, to, user_id)
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
        if shipment is not None and order.tracking_number is None:
            order.courier = shipment.courier
            order.tracking_number = shipment.tracking_number
            note = note or f"label {shipment.tracking_number} from {shipment.courier}"
        record_event(session, order, to, actor, note)
        if to == S.SHIPPED:
            await fulfilment.mailer.order_shipped(session, order)
        await session.flush()
        await session.refresh(order, ["events", "updated_at"])
        view = order_view(order)
    if restocked:
        await invalidate_products(fulfilment.cache, *(line.sku for line in view.lines))
    if to in (S.CANCELLED, S.REFUNDED, S.PAID):
        metrics.orders_total.labels(str(to)).inc()
    return view


# --- tracking -----------------------------------------------------------------------------


def _target(events: list[TrackingEvent]) -> OrderStatus | None:
    statuses = {e.status for e in events}
    if DELIVERED_STATUS in statuses:
        return S.DELIVERED
    if statuses.intersection(MOVING):
        return S.SHIPPED
    return None


def _due(status: str, target: OrderStatus | None) -> bool:
    if target == S.SHIPPED:
        return status == S.PACKED
    if target == S.DELIVERED:
        return status in (S.PACKED, S.SHIPPED)
    return False


async def apply_tracking(
    db: Database, fulfilment: Fulfilment, order_id: int, events: list[TrackingEvent]
) -> bool:
    """Move the order along what the courier reports; True when its status changed.

    Idempotent: events that the order has already moved past change nothing, so
    a pulled list and pushed webhooks may repeat each other in any order.
    """
    target = _target(events)
    async with db.read() as session:
        status = (
            await session.execute(select(Order.status).where(Order.id == order_id))
        ).scalar_one_or_none()
    if status is None or not _due(status, target):
        return False
    last = {e.status: e for e in events}
    async with db.write() as session:
        order = await _locked_order(session, order_id, None)
        if not _due(order.status, target):
            return False  # another worker applied it meanwhile
        if order.status == S.PACKED:
            moving = next((last[s] for s in MOVING if s in last), last.get(DELIVERED_STATUS))
            record_event(
                session, order, S.SHIPPED, "courier", _event_note(moving, "parcel on its way")
            )
            await fulfilment.mailer.order_shipped(session, order)
        if target == S.DELIVERED:
            record_event(
                session,
                order,
                S.DELIVERED,
                "courier",
                _event_note(last.get(DELIVERED_STATUS), "delivered"),
            )
        order.updated_at = utcnow()
    return True


def _event_note(event: TrackingEvent | None, fallback: str) -> str:
    if event is None:
        return fallback
    where = f" ({event.location})" if event.location else ""
    return f"{event.status}{where}: {event.description}"[:400]


async def tracking(
    db: Database, fulfilment: Fulfilment, order_id: int, user_id: int | None
) -> TrackingOut:
    """The order's history and the courier's events; pulling them also applies them."""
    order = await get_order(db, order_id, user_id)
    carrier_events: list[TrackingEvent] = []
    if order.courier and order.tracking_number:
        try:
            carrier_events = await fulfilment.courier.tracking(
                courier=order.courier, tracking_number=order.tracking_number
            )
        except (CourierUnavailable, ShipmentRejected, ValueError) as exc:
            log.warning("no tracking for order %s: %s", order.id, exc)
        if carrier_events:
            await apply_tracking(db, fulfilment, order.id, carrier_events)
            # Re-read whoever applied them (this call, or a webhook that came meanwhile).
            order = await get_order(db, order_id, user_id)
    events = [
        TrackingEventOut(status=e.to_status, at=e.created_at, description=e.note)
        for e in order.events
    ]
    events += [
        TrackingEventOut(
            status=e.status, at=e.occurred_at, location=e.location, description=e.description
        )
        for e in carrier_events
    ]
    events.sort(key=lambda e: e.at)
    return TrackingOut(
        order_id=order.id,
        status=order.status,
        courier=order.courier,
        tracking_number=order.tracking_number,
        events=events,
    )


async def courier_webhook(
    db: Database, fulfilment: Fulfilment, event: dict[str, Any]
) -> dict[str, str]:
    """Apply a verified `tracking.updated` delivery; unknown shipments are acknowledged only."""
    try:
        courier, tracking_number, reference, update_event = tracking_update_from_webhook(event)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRequest(f"not a tracking update this shop understands: {exc}") from exc
    async with db.read() as session:
        order = (
            await session.execute(select(Order).where(Order.reference == reference))
        ).scalar_one_or_none()
    if order is None or (order.courier, order.tracking_number) != (courier, tracking_number):
        log.info("courier webhook for unknown shipment %s/%s ignored", courier, tracking_number)
        return {"status": "ignored"}
    changed = await apply_tracking(db, fulfilment, order.id, [update_event])
    return {"status": "applied" if changed else "unchanged"}


PAYMENT_EVENTS = ("charge.succeeded", "charge.failed", "charge.refunded")


async def payment_webhook(
    db: Database, fulfilment: Fulfilment, event: dict[str, Any]
) -> dict[str, str]:
    """Apply a verified payment event to its order.

    - `charge.succeeded` settles an order still `pending_payment` (a checkout that
      crashed, or the webhook outrunning the checkout's own answer) as paid; for
      an order paid by another charge or cancelled, the charge is a duplicate
      (e.g. a timed-out primary that charged after all) and is refunded.
    - `charge.failed` cancels an order still `pending_payment` and restocks it.
    - `charge.refunded` is acknowledged (the shop's own refunds already moved the order).
    """
    kind, data = event.get("type"), event.get("data")
    if kind not in PAYMENT_EVENTS or not isinstance(data, dict):
        raise InvalidRequest(f"not a payment event this shop understands: {kind!r}")
    if kind == "charge.refunded":
        log.info("payment webhook: refund %s noted", data.get("id"))
        return {"status": "noted"}
    try:
        reference = str(data["order_reference"])
        charge_id, provider = str(data["id"]), str(data["provider"])
        amount, currency = int(data["amount_minor"]), str(data["currency"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRequest(f"payment event without {exc}") from exc
    outcome = "unchanged"
    async with db.write() as session:
        order = (
            await session.execute(
                select(Order).where(Order.reference == reference).with_for_update()
            )
        ).scalar_one_or_none()
        if order is None:
            return {"status": "ignored"}
        if kind == "charge.succeeded":
            if order.status == S.PENDING_PAYMENT:
                await mark_paid(
                    session,
                    order,
                    fulfilment.mailer,
                    provider=provider,
                    reference=charge_id,
                    actor="payment",
                    note=f"charged by {provider} (webhook)",
                )
                outcome = "paid"
            elif order.payment_reference != charge_id:
                outcome = "duplicate"
        elif order.status == S.PENDING_PAYMENT:
            await cancel_unpaid(
                session, order, provider=provider, actor="payment", note="payment failed (webhook)"
            )
            outcome = "cancelled"
        view = order_view(order)
    if outcome == "paid":
        metrics.orders_total.labels("paid").inc()
        metrics.revenue_minor_units_total.labels(view.total.currency).inc(view.total.amount)
    elif outcome == "cancelled":
        metrics.orders_total.labels("payment_failed").inc()
        await invalidate_products(fulfilment.cache, *(line.sku for line in view.lines))
    elif outcome == "duplicate":
        await refund_duplicate(
            fulfilment.payments,
            provider=provider,
            charge_id=charge_id,
            amount_minor=amount,
            currency=currency,
            order_reference=reference,
        )
        outcome = "duplicate_refunded"
    return {"status": outcome}


async def refund_duplicate(
    payments: PaymentGateway,
    *,
    provider: str,
    charge_id: str,
    amount_minor: int,
    currency: str,
    order_reference: str,
) -> None:
    """Refund a charge the order does not keep (it was paid by another one, or cancelled)."""
    result = await payments.refund(
        provider=provider,
        provider_reference=charge_id,
        amount_minor=amount_minor,
        currency=currency,
        idempotency_key=f"refund-duplicate-{charge_id}",
    )
    if not result.succeeded:
        raise UpstreamUnavailable(
            f"could not refund duplicate charge {charge_id} of {order_reference}: "
            f"{result.reason or 'no reason'}"
        )
    log.warning("refunded duplicate charge %s of %s at %s", charge_id, order_reference, provider)


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
        return await _order(session, order_id, user_id)


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
