"""Shipping quotes and checkout.

Checkout, in order:
1. an `Idempotency-Key` already used by this customer returns that order again;
2. the cart is priced and the chosen shipping option is re-quoted (never trusted from the client);
3. the risk check runs once (the partners' engine records and counts it): `block`
   refuses (403 fraud_blocked); `challenge` needs the customer's current TOTP code
   in the request (403 step_up_required / step_up_failed / step_up_unavailable
   otherwise); nothing is written before this step passes;
4. one transaction creates the order (pending_payment) and takes the stock with
   conditional updates (`quantity = quantity - n WHERE quantity >= n`), so two
   checkouts can never both take the last unit; any line short of stock rolls
   the whole transaction back;
5. the payment gateway is charged outside any transaction (no locks held on the network);
6. approved: the order becomes paid (the confirmation mail is enqueued in the same
   transaction) and the cart is emptied. Declined or failed: the order is
   cancelled and the stock returned, and the cart is kept. A payment webhook may
   settle the order first; whichever comes second changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import (
    CartItem,
    Order,
    OrderAllocation,
    OrderEvent,
    OrderLine,
    Product,
    Stock,
    User,
    Warehouse,
)
from app.db.session import Database
from app.domain import accounts, catalog, orders
from app.domain.cache import CatalogCache
from app.domain.cart import cart_lines
from app.domain.mail import OrderMailer
from app.domain.orders import OrderStatus
from app.domain.risk import (
    RiskAssessor,
    RiskContext,
    RiskDecision,
    RiskVerdict,
    customer_reference,
)
from app.errors import (
    ApiError,
    Forbidden,
    InvalidRequest,
    OutOfStock,
    PaymentFailed,
    UpstreamUnavailable,
)
from app.observability import metrics
from app.partners.couriers import CourierUnavailable
from app.partners.interfaces import (
    ChargeRequest,
    ChargeResult,
    CourierGateway,
    CustomsItem,
    Parcel,
    PaymentChannel,
    PaymentGateway,
    PaymentStatus,
    ShippingQuote,
)
from app.schemas import CheckoutIn, Money, OrderOut, QuoteOut, ShippingOptionOut

log = logging.getLogger("shop.checkout")


@dataclass(frozen=True)
class CheckoutServices:
    db: Database
    cache: CatalogCache
    payments: PaymentGateway
    courier: CourierGateway
    risk: RiskAssessor
    mailer: OrderMailer
    currency: str
    origin_country: str


def _parcel(
    lines: list[tuple[CartItem, Product]], country: str, postal_code: str, currency: str
) -> Parcel:
    return Parcel(
        weight_grams=sum(p.weight_grams * i.quantity for i, p in lines),
        destination_country=country,
        postal_code=postal_code,
        declared_value_minor=sum(p.price_minor * i.quantity for i, p in lines),
        currency=currency,
        items=tuple(
            CustomsItem(
                hs_code=p.hs_code,
                description=p.name,
                quantity=i.quantity,
                value_minor=p.price_minor * i.quantity,
                origin_country=p.origin_country,
            )
            for i, p in lines
        ),
    )


def _option_out(quote: ShippingQuote) -> ShippingOptionOut:
    return ShippingOptionOut(
        id=quote.option_id,
        courier=quote.courier,
        service=quote.service,
        price=Money(amount=quote.amount_minor, currency=quote.currency),
        estimated_days=quote.estimated_days,
    )


async def quote(
    services: CheckoutServices, cart_id: str | None, country: str, postal_code: str
) -> QuoteOut:
    if cart_id is None:
        raise InvalidRequest("the cart is empty")
    async with services.db.read() as session:
        lines = await cart_lines(session, cart_id)
    if not lines:
        raise InvalidRequest("the cart is empty")
    quotes = await _quotes(services, _parcel(lines, country, postal_code, services.currency))
    return QuoteOut(options=[_option_out(q) for q in quotes])


async def _quotes(services: CheckoutServices, parcel: Parcel) -> list[ShippingQuote]:
    try:
        return await services.courier.quote(parcel)
    except CourierUnavailable as exc:
        raise UpstreamUnavailable(
            f"no courier answered ({exc}); shipping cannot be quoted right now, try again"
        ) from exc


def _attempt_reference(user_id: int, idempotency_key: str) -> str:
    """One reference per customer and Idempotency-Key: what the risk history counts."""
    digest = hashlib.sha256(f"{user_id}:{idempotency_key}".encode()).hexdigest()
    return f"CA-{digest[:20].upper()}"


def _fail(reason: str) -> None:
    metrics.checkout_failures_total.labels(reason).inc()


async def _existing_order(db: Database, user_id: int, key: str) -> Order | None:
    async with db.read() as session:
        return (
            await session.execute(
                select(Order).where(Order.user_id == user_id, Order.idempotency_key == key)
            )
        ).scalar_one_or_none()


async def _take_stock(
    session: AsyncSession, order_id: int, product: Product, quantity: int
) -> None:
    """Take `quantity` units from the warehouses (by priority), or raise OutOfStock."""
    bins = (
        await session.execute(
            select(Stock.warehouse_id, Stock.quantity)
            .join(Warehouse, Warehouse.id == Stock.warehouse_id)
            .where(Stock.product_id == product.id, Stock.quantity > 0)
            .order_by(Warehouse.priority, Warehouse.id)
        )
    ).all()
    remaining = quantity
    for warehouse_id, seen_quantity in bins:
        take = min(seen_quantity, remaining)
        taken = await session.execute(
            update(Stock)
            .where(
                Stock.product_id == product.id,
                Stock.warehouse_id == warehouse_id,
                Stock.quantity >= take,
            )
            .values(quantity=Stock.quantity - take)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            session.add(
                OrderAllocation(
                    order_id=order_id,
                    product_id=product.id,
                    warehouse_id=warehouse_id,
                    quantity=take,
                )
            )
            remaining -= take
        if remaining == 0:
            return
    raise OutOfStock(f"{product.sku} is out of stock for {quantity} units", sku=product.sku)


async def _place_order(
    services: CheckoutServices,
    user: User,
    cart_id: str,
    body: CheckoutIn,
    option: ShippingQuote,
    key: str,
    reference: str,
    verdict: RiskVerdict,
) -> Order:
    async with services.db.write() as session:
        # A concurrent request with this key may have placed (and paid, emptying the cart)
        # while this one was quoting and assessing: that is a replay, not an empty cart.
        earlier = (
            await session.execute(
                select(Order).where(Order.user_id == user.id, Order.idempotency_key == key)
            )
        ).scalar_one_or_none()
        if earlier is not None:
            raise _Replay(earlier)
        lines = await cart_lines(session, cart_id)
        if not lines:
            raise InvalidRequest("the cart is empty")
        subtotal = sum(p.price_minor * i.quantity for i, p in lines)
        order = Order(
            reference=reference,
            user_id=user.id,
            status=OrderStatus.PENDING_PAYMENT,
            currency=services.currency,
            subtotal_minor=subtotal,
            shipping_minor=option.amount_minor,
            total_minor=subtotal + option.amount_minor,
            shipping_option=option.option_id,
            shipping_address=body.address.model_dump(),
            payment_channel=body.payment.channel,
            idempotency_key=key,
        )
        session.add(order)
        await session.flush()
        session.add(
            OrderEvent(
                order_id=order.id,
                from_status=None,
                to_status=OrderStatus.PENDING_PAYMENT,
                actor="customer",
                note=f"order placed (risk {verdict.decision}, score {verdict.score}"
                + (f": {', '.join(verdict.reasons)}" if verdict.reasons else "")
                + ")",
            )
        )
        # Lock rows in one global order (by product id) so concurrent checkouts cannot deadlock.
        for item, product in sorted(lines, key=lambda line: line[1].id):
            session.add(
                OrderLine(
                    order_id=order.id,
                    product_id=product.id,
                    sku=product.sku,
                    name=product.name,
                    unit_price_minor=product.price_minor,
                    quantity=item.quantity,
                    hs_code=product.hs_code,
                    weight_grams=product.weight_grams,
                )
            )
            await _take_stock(session, order.id, product, item.quantity)
    return order


async def _charge(
    services: CheckoutServices, order: Order, user: User, body: CheckoutIn
) -> ChargeResult:
    request = ChargeRequest(
        idempotency_key=f"charge-{order.reference}",
        order_reference=order.reference,
        amount_minor=order.total_minor,
        currency=order.currency,
        channel=PaymentChannel(body.payment.channel),
        payment_token=body.payment.token,
        customer_reference=customer_reference(user.id),
    )
    try:
        return await services.payments.charge(request)
    except Exception as exc:  # a gateway bug must not leave the order hanging
        log.exception("payment gateway raised", extra={"order_id": order.id})
        return ChargeResult(
            status=PaymentStatus.ERROR, provider="unknown", reason=type(exc).__name__
        )


async def _settle(
    services: CheckoutServices, order: Order, cart_id: str, result: ChargeResult
) -> tuple[Order, bool]:
    """Record the charge's outcome; (order, whether this call moved it out of pending)."""
    async with services.db.write() as session:
        order = (
            await session.execute(select(Order).where(Order.id == order.id).with_for_update())
        ).scalar_one()
        settled_here = order.status == OrderStatus.PENDING_PAYMENT
        if result.status == PaymentStatus.APPROVED:
            if settled_here:
                await orders.mark_paid(
                    session,
                    order,
                    services.mailer,
                    provider=result.provider,
                    reference=result.provider_reference,
                    actor="payment",
                    note=f"charged by {result.provider}",
                )
            for line in order.lines:
                await session.execute(
                    delete(CartItem).where(
                        CartItem.cart_id == cart_id, CartItem.product_id == line.product_id
                    )
                )
        elif settled_here:
            note = f"payment {result.status}: {result.reason or 'no reason given'}"
            await orders.cancel_unpaid(
                session, order, provider=result.provider, actor="payment", note=note
            )
        await session.flush()
        await session.refresh(order, ["events", "lines"])
    return order, settled_here


async def checkout(
    services: CheckoutServices,
    *,
    user: User,
    cart_id: str | None,
    body: CheckoutIn,
    idempotency_key: str,
    client_ip: str | None,
) -> tuple[OrderOut, bool]:
    """Place and pay an order. Returns (order, replayed)."""
    existing = await _existing_order(services.db, user.id, idempotency_key)
    if existing is not None:
        return orders.order_view(existing), True
    try:
        return await _checkout(services, user, cart_id, body, idempotency_key, client_ip), False
    except _Replay as replay:
        return replay.view, True


class _Replay(Exception):
    """An order with this Idempotency-Key exists already: answer with it (viewed while loaded)."""

    def __init__(self, order: Order) -> None:
        self.view = orders.order_view(order)


async def _checkout(
    services: CheckoutServices,
    user: User,
    cart_id: str | None,
    body: CheckoutIn,
    key: str,
    client_ip: str | None,
) -> OrderOut:
    if cart_id is None:
        _fail("invalid")
        raise InvalidRequest("the cart is empty")
    async with services.db.read() as session:
        lines = await cart_lines(session, cart_id)
    if not lines:
        existing = await _existing_order(services.db, user.id, key)
        if existing is not None:  # a concurrent request with this key emptied the cart
            raise _Replay(existing)
        _fail("invalid")
        raise InvalidRequest("the cart is empty")
    parcel = _parcel(lines, body.address.country, body.address.postal_code, services.currency)
    quotes = {q.option_id: q for q in await _quotes(services, parcel)}
    option = quotes.get(body.shipping_option)
    if option is None:
        _fail("invalid")
        offered = ", ".join(sorted(quotes)) or "none (no delivery to this destination)"
        raise InvalidRequest(
            f"shipping_option {body.shipping_option!r} is not offered for this cart and address; "
            f"offered: {offered}"
        )
    reference = f"SO-{uuid.uuid4().hex[:20].upper()}"
    verdict = await services.risk.assess(
        RiskContext(
            user_id=user.id,
            email=user.email,
            account_created_at=user.created_at,
            client_ip=client_ip,
            amount_minor=parcel.declared_value_minor + option.amount_minor,
            currency=services.currency,
            destination_country=body.address.country,
            billing_country=body.billing_country or body.address.country,
            payment_channel=body.payment.channel,
            payment_token=body.payment.token,
            item_count=sum(i.quantity for i, _ in lines),
            # The checkout attempt, not the order: a challenged attempt sent again with the
            # customer's TOTP code (same Idempotency-Key) is the same attempt for velocity.
            order_reference=_attempt_reference(user.id, key),
        )
    )
    if verdict.decision == RiskDecision.BLOCK:
        _fail("fraud_blocked")
        raise Forbidden(
            "this order cannot be accepted; contact support if you think this is a mistake",
            reason="fraud_blocked",
        )
    if verdict.decision == RiskDecision.CHALLENGE:
        try:
            await accounts.verify_step_up(services.db, user, body.totp_code)
        except ApiError:
            _fail("fraud_challenged")
            raise
    try:
        order = await _place_order(services, user, cart_id, body, option, key, reference, verdict)
    except OutOfStock:
        _fail("out_of_stock")
        raise
    except IntegrityError:
        # The same Idempotency-Key raced in from a parallel request: that one won.
        existing = await _existing_order(services.db, user.id, key)
        if existing is None:
            raise
        raise _Replay(existing) from None
    metrics.orders_total.labels("placed").inc()

    result = await _charge(services, order, user, body)
    order, settled_here = await _settle(services, order, cart_id, result)
    await catalog.invalidate_products(services.cache, *(line.sku for line in order.lines))
    if result.status == PaymentStatus.APPROVED:
        if settled_here:
            metrics.orders_total.labels("paid").inc()
            metrics.revenue_minor_units_total.labels(order.currency).inc(order.total_minor)
        elif result.provider_reference and order.payment_reference != result.provider_reference:
            # Paid meanwhile by another charge (its webhook came first): this one is a duplicate.
            await orders.refund_duplicate(
                services.payments,
                provider=result.provider,
                charge_id=result.provider_reference,
                amount_minor=order.total_minor,
                currency=order.currency,
                order_reference=order.reference,
            )
        return orders.order_view(order)
    if settled_here:
        metrics.orders_total.labels("payment_failed").inc()
    if result.status == PaymentStatus.DECLINED:
        _fail("payment_declined")
        raise PaymentFailed(
            f"the payment was declined ({result.reason or 'no reason given'}); "
            "the order was cancelled",
            order_id=order.id,
            reason="payment_declined",
        )
    _fail("payment_error")
    error: ApiError = UpstreamUnavailable(
        "the payment could not be completed (provider unavailable); the order was cancelled; "
        "try again",
        order_id=order.id,
        reason="payment_error",
    )
    raise error
