"""Fulfilment: the order moves that reach a partner, and the partners' events.

Cancelling or refunding an order that was paid refunds the payment first; an
order that leaves the warehouse flow before shipping gives its units back.
Packing buys the label: the shipment is created at the courier (with the
customs declaration of an export parcel) before the order becomes `packed`,
outside any database transaction, keyed on the order so a retry never buys
two. The courier's tracking events then move the order on: any movement of
the parcel makes it `shipped`, `delivered` makes it `delivered`; they arrive
by pull (reading the tracking) or by push (the courier's signed webhook).
Payment events (the providers' webhooks) settle or cancel orders a checkout
left pending, and refund duplicate charges.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Order, Product, WebhookEvent
from app.db.session import Database
from app.db.types import utcnow
from app.domain.cache import CatalogCache
from app.domain.catalog import invalidate_products
from app.domain.errors import (
    IllegalTransition,
    ShipmentRefused,
    UpstreamUnavailable,
)
from app.domain.mail import OrderMailer
from app.domain.orders import (
    CUSTOMER_CANCELLABLE,
    IN_WAREHOUSE,
    MONEY_TAKEN,
    OrderStatus,
    S,
    check_transition,
    get_order,
    load_order,
    mark_paid,
    order_view,
    record_event,
    restock,
)
from app.observability import metrics
from app.partners.couriers import CourierUnavailable, ShipmentRejected
from app.partners.interfaces import (
    CourierGateway,
    CustomsItem,
    Parcel,
    PaymentGateway,
    Shipment,
    TrackingEvent,
)
from app.partners.payments.events import CHARGE_SUCCEEDED, PaymentEvent
from app.schemas import OrderOut, TrackingEventOut, TrackingOut

log = logging.getLogger("shop.orders")

# Courier tracking statuses that mean the parcel has left the warehouse.
MOVING = ("picked_up", "in_transit", "customs_cleared", "out_for_delivery")
DELIVERED_STATUS = "delivered"


@dataclass(frozen=True)
class Fulfilment:
    payments: PaymentGateway
    courier: CourierGateway
    cache: CatalogCache
    mailer: OrderMailer
    # How long a partner event is remembered: the webhooks' replay window (older
    # deliveries fail their signature check anyway).
    webhook_window_seconds: int = 300


# --- partner events seen --------------------------------------------------------------------


async def _already_applied(db: Database, key: str) -> bool:
    async with db.read() as session:
        return await session.get(WebhookEvent, key) is not None


async def _remember_applied(db: Database, key: str, window_seconds: int) -> None:
    """Note an applied event (a redelivery within the window is then ignored); forget old ones."""
    now = utcnow()
    try:
        async with db.write() as session:
            await session.execute(
                delete(WebhookEvent).where(
                    WebhookEvent.received_at < now - timedelta(seconds=2 * window_seconds)
                )
            )
            session.add(WebhookEvent(id=key[:160], received_at=now))
    except IntegrityError:
        pass  # a concurrent redelivery noted it first; both were applied idempotently


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
        order = await load_order(session, order_id, user_id)
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
    """Move an order to `to`, with its side effects, or refuse with 409.

    A move that gives money back commits `refund_pending` first, then asks the
    provider for the refund with no database lock held, then commits the move;
    when the provider does not confirm, the order stays `refund_pending` and the
    reconciler finishes it (the refund's idempotency key makes retrying safe).
    """
    shipment = None
    if to in (S.PACKED, S.SHIPPED):
        shipment = await _buy_label(db, fulfilment.courier, order_id, to, user_id)
    refund_first = False
    async with db.write() as session:
        order = await load_order(session, order_id, user_id, lock=True)
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
        restocked = to in (S.CANCELLED, S.REFUNDED) and current in IN_WAREHOUSE
        if restocked:
            await restock(session, order.id)
        refund_first = (
            to in (S.CANCELLED, S.REFUNDED)
            and current in MONEY_TAKEN
            and order.payment_reference is not None
        )
        if refund_first:
            order.refund_to = str(to)
            record_event(session, order, S.REFUND_PENDING, actor, note or f"{to}: refund asked")
        else:
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
    if refund_first:
        return await finish_refund(db, fulfilment, order_id, actor=actor)
    if to in (S.CANCELLED, S.REFUNDED, S.PAID):
        metrics.orders_total.labels(str(to)).inc()
    return view


async def finish_refund(
    db: Database, fulfilment: Fulfilment, order_id: int, *, actor: str
) -> OrderOut:
    """Ask the provider to refund a `refund_pending` order and, once it confirms, move the
    order on. Safe to repeat (the refund is keyed on the order); the reconciler calls it."""
    order = await get_order(db, order_id, None)
    if order.status != S.REFUND_PENDING or order.payment_reference is None:
        return order_view(order)
    result = await fulfilment.payments.refund(
        provider=order.payment_provider or "",
        provider_reference=order.payment_reference,
        amount_minor=order.total_minor,
        currency=order.currency,
        idempotency_key=f"refund-{order.reference}",
    )
    if not result.succeeded:
        log.warning(
            "refund of %s not confirmed by %s (%s): left refund_pending for the reconciler",
            order.reference,
            order.payment_provider,
            result.reason or "no reason",
        )
        return order_view(order)
    async with db.write() as session:
        order = await load_order(session, order_id, None, lock=True)
        if order.status != S.REFUND_PENDING:
            return order_view(order)  # finished meanwhile by another caller
        to = OrderStatus(order.refund_to or S.REFUNDED)
        order.refund_to = None
        record_event(
            session, order, to, actor, f"refunded ({result.provider_reference or 'no reference'})"
        )
        await session.flush()
        await session.refresh(order, ["events", "updated_at"])
        view = order_view(order)
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
        order = await load_order(session, order_id, None, lock=True)
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
    db: Database,
    fulfilment: Fulfilment,
    *,
    event_id: str,
    courier: str,
    tracking_number: str,
    order_reference: str,
    update_event: TrackingEvent,
) -> dict[str, str]:
    """Apply a verified `tracking.updated` delivery; unknown shipments are acknowledged only,
    a redelivery of an applied event is ignored."""
    seen_key = f"couriers:{event_id}"
    if event_id and await _already_applied(db, seen_key):
        return {"status": "duplicate"}
    reference = order_reference
    async with db.read() as session:
        order = (
            await session.execute(select(Order).where(Order.reference == reference))
        ).scalar_one_or_none()
    if order is None or (order.courier, order.tracking_number) != (courier, tracking_number):
        log.info("courier webhook for unknown shipment %s/%s ignored", courier, tracking_number)
        return {"status": "ignored"}
    changed = await apply_tracking(db, fulfilment, order.id, [update_event])
    if event_id:
        await _remember_applied(db, seen_key, fulfilment.webhook_window_seconds)
    return {"status": "applied" if changed else "unchanged"}


async def payment_webhook(
    db: Database, fulfilment: Fulfilment, event: PaymentEvent
) -> dict[str, str]:
    """Apply a verified payment event to its order.

    - `charge.succeeded` settles an order still `pending_payment` (a checkout that
      crashed, or the webhook outrunning the checkout's own answer) as paid, if it
      charged the order's amount in the order's currency; for an order paid by
      another charge or cancelled, the charge is a duplicate (e.g. a timed-out
      primary that charged after all) and is refunded.
    - `charge.failed` is noted only: one provider's failure says nothing of the
      others a checkout may be failing over to; the checkout itself or the
      reconciler (which asks every provider) cancels an unpaid order.
    - `charge.refunded` is acknowledged (the shop's own refunds already moved the order).

    A redelivery of an event already applied (same event id, within the replay
    window) changes nothing.
    """
    if event.kind != CHARGE_SUCCEEDED:
        log.info("payment webhook: %s %s noted", event.kind, event.charge_id)
        return {"status": "noted"}
    seen_key = f"payments:{event.event_id}"
    if await _already_applied(db, seen_key):
        return {"status": "duplicate"}
    outcome = await _apply_charge_succeeded(db, fulfilment, event)
    await _remember_applied(db, seen_key, fulfilment.webhook_window_seconds)
    return {"status": outcome}


async def _apply_charge_succeeded(db: Database, fulfilment: Fulfilment, event: PaymentEvent) -> str:
    reference, charge_id, provider = event.order_reference, event.charge_id, event.provider
    outcome = "unchanged"
    async with db.write() as session:
        order = (
            await session.execute(
                select(Order).where(Order.reference == reference).with_for_update()
            )
        ).scalar_one_or_none()
        if order is None:
            return "ignored"
        if (event.amount_minor, event.currency) != (order.total_minor, order.currency):
            log.error(
                "payment webhook: charge %s at %s took %d %s for %s, which is %d %s; "
                "the order is not settled by it",
                charge_id,
                provider,
                event.amount_minor,
                event.currency,
                reference,
                order.total_minor,
                order.currency,
            )
            return "amount_mismatch"
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
        view = order_view(order)
    if outcome == "paid":
        metrics.orders_total.labels("paid").inc()
        metrics.revenue_minor_units_total.labels(view.total.currency).inc(view.total.amount)
    elif outcome == "duplicate":
        await refund_duplicate(
            fulfilment.payments,
            provider=provider,
            charge_id=charge_id,
            amount_minor=event.amount_minor,
            currency=event.currency,
            order_reference=reference,
        )
        outcome = "duplicate_refunded"
    return outcome


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
