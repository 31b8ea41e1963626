"""Shipping quotes and checkout.

Checkout, in order:
1. an `Idempotency-Key` already used by this customer answers as that checkout did: the
   order, or its refusal (402/503) again, marked `Idempotent-Replayed`;
2. the cart is read once (its snapshot: products, quantities, prices) and priced in the
   shop's currency (a product priced in another is refused, never re-denominated); the
   chosen shipping option is re-quoted (never trusted from the client);
3. the risk check runs once (the partners' engine records and counts it): `block`
   refuses (403 fraud_blocked); `challenge` needs the customer's current TOTP code
   in the request (403 step_up_required / step_up_failed / step_up_unavailable
   otherwise); nothing is written before this step passes;
4. one transaction creates the order (pending_payment) from the cart as it is then,
   refused (409 cart_changed, cart kept) unless it is the snapshot that was priced,
   quoted and risk-checked, and takes the stock with conditional updates
   (`quantity = quantity - n WHERE quantity >= n`), so two checkouts can never both
   take the last unit; any line short of stock rolls the whole transaction back;
5. the payment gateway is charged outside any transaction (no locks held on the network);
6. approved: the order becomes paid (the confirmation mail is enqueued in the same
   transaction) and the cart is emptied. Declined or failed: the order is
   cancelled and the stock returned, and the cart is kept. Unknown (a provider
   may have charged and could not be asked): the order stays pending with its
   stock (202) and the reconciler settles it. A payment webhook may settle the
   order first; whichever comes second changes nothing.

Every partner call of steps 2-5 shares one deadline (`deadline_seconds`), so a
checkout ends under the shop's graceful timeout and the edge's server timeout.
"""

from __future__ import annotations

import dataclasses
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
from app.domain import accounts, catalog, fulfilment, orders
from app.domain.cache import CatalogCache
from app.domain.cart import cart_lines
from app.domain.errors import (
    CartChanged,
    CurrencyMismatch,
    DomainError,
    EmptyCart,
    Forbidden,
    OutOfStock,
    PaymentFailed,
    ShippingOptionUnavailable,
    UpstreamUnavailable,
)
from app.domain.mail import OrderMailer
from app.domain.orders import OrderStatus
from app.domain.quotes import client_var as quote_client
from app.domain.quotes import guard as quotes_guard
from app.observability import metrics
from app.partners.couriers import CourierUnavailable
from app.partners.deadline import deadline
from app.partners.interfaces import (
    ChargeRequest,
    ChargeResult,
    CourierGateway,
    CustomsItem,
    Parcel,
    PaymentChannel,
    PaymentGateway,
    PaymentStatus,
    RiskAssessment,
    RiskAssessor,
    RiskDecision,
    RiskRequest,
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
    # One time budget for every partner call of a checkout (quotes, risk, charge), under
    # the shop's graceful timeout and the edge's server timeout: retries respect it.
    deadline_seconds: float = 12.0


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


CartSnapshot = tuple[tuple[int, int, int, str], ...]


def _snapshot(lines: list[tuple[CartItem, Product]]) -> CartSnapshot:
    """What was priced, quoted and risk-checked: (product, quantity, unit price, currency)."""
    return tuple(sorted((p.id, i.quantity, p.price_minor, p.currency) for i, p in lines))


def _check_currencies(lines: list[tuple[CartItem, Product]], currency: str) -> None:
    """Refuse a cart priced in another currency than the one charged (never re-denominate)."""
    other = sorted({p.sku for _, p in lines if p.currency != currency})
    if other:
        raise CurrencyMismatch(
            f"{', '.join(other[:5])} {'is' if len(other) == 1 else 'are'} not priced in "
            f"{currency}, the currency this shop charges; the cart cannot be checked out",
            skus=other,
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
    """Shipping options for the cart (anonymous callers too): rate-limited per client and
    answered from a short cache by destination and weight band (app/domain/quotes.py).
    Checkout does not trust these: it re-quotes the chosen option fresh."""
    guard = quotes_guard()
    guard.admit(quote_client.get())
    if cart_id is None:
        raise EmptyCart("the cart is empty")
    async with services.db.read() as session:
        lines = await cart_lines(session, cart_id)
    if not lines:
        raise EmptyCart("the cart is empty")
    parcel = _parcel(lines, country, postal_code, services.currency)
    banded = dataclasses.replace(
        parcel, weight_grams=guard.policy.band_weight(parcel.weight_grams), items=()
    )

    async def ask_couriers() -> list[ShippingQuote]:
        try:
            return await services.courier.quote(banded)
        except CourierUnavailable as exc:
            raise UpstreamUnavailable(
                "no courier answered; shipping cannot be quoted right now, try again"
            ) from exc

    shared = services.cache if services.cache.backend == "redis" else None
    key = guard.policy.key(country, postal_code, parcel.weight_grams, services.currency)
    quotes = await guard.cache.get_or_fetch(key, shared, ask_couriers)
    return QuoteOut(options=[_option_out(q) for q in quotes])


async def _quotes(services: CheckoutServices, parcel: Parcel) -> list[ShippingQuote]:
    try:
        return await services.courier.quote(parcel)
    except CourierUnavailable as exc:
        raise UpstreamUnavailable(
            f"no courier answered ({exc}); shipping cannot be quoted right now, try again"
        ) from exc


def customer_reference(user_id: int) -> str:
    """How partners (payment providers, the risk history) name a customer."""
    return f"user-{user_id}"


def _attempt_reference(user_id: int, idempotency_key: str) -> str:
    """One reference per customer and Idempotency-Key: what the risk history counts."""
    digest = hashlib.sha256(f"{user_id}:{idempotency_key}".encode()).hexdigest()
    return f"CA-{digest[:20].upper()}"


async def _withdraw(risk: RiskAssessor, attempt: str) -> None:
    """Take back an attempt that ended before its charge; if the database cannot take that
    either, the attempt keeps counting (logged) and the original error is what is raised."""
    try:
        await risk.withdraw(attempt)
    except Exception:
        log.warning("risk %s could not be withdrawn", attempt, exc_info=True)


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
    verdict: RiskAssessment,
    snapshot: CartSnapshot,
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
        if _snapshot(lines) != snapshot:
            # Changed while the courier quoted and the risk check ran: what would be charged
            # is not what was checked. Nothing is written; the cart stays as it is now.
            raise CartChanged(
                "the cart or its prices changed while it was being checked out; nothing was "
                "charged; review the cart and check out again"
            )
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
                + (f": {', '.join(verdict.reason_codes)}" if verdict.reasons else "")
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


async def _place_or_replay(
    services: CheckoutServices,
    user: User,
    cart_id: str,
    body: CheckoutIn,
    option: ShippingQuote,
    key: str,
    reference: str,
    verdict: RiskAssessment,
    snapshot: CartSnapshot,
) -> Order:
    """`_place_order`, its refusals counted by reason; a same-key race it lost is a replay."""
    try:
        return await _place_order(
            services, user, cart_id, body, option, key, reference, verdict, snapshot
        )
    except OutOfStock:
        _fail("out_of_stock")
        raise
    except CartChanged:
        _fail("cart_changed")
        raise
    except IntegrityError:
        # The same Idempotency-Key raced in from a parallel request: that one won.
        existing = await _existing_order(services.db, user.id, key)
        if existing is None:
            raise
        raise _Replay(existing) from None


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


def _refusal(result: ChargeResult, order_id: int) -> DomainError:
    """What the customer is told when the charge did not go through (the order is cancelled)."""
    if result.status == PaymentStatus.DECLINED:
        return PaymentFailed(
            f"the payment was declined ({result.reason or 'no reason given'}); "
            "the order was cancelled",
            order_id=order_id,
            reason="payment_declined",
        )
    return UpstreamUnavailable(
        "the payment could not be completed (provider unavailable); the order was cancelled; "
        "try again",
        order_id=order_id,
        reason="payment_error",
    )


_REPLAYABLE: dict[str, type[DomainError]] = {
    cls.code: cls for cls in (PaymentFailed, UpstreamUnavailable)
}


def _replay(order: Order) -> OrderOut:
    """The answer of the checkout that placed `order`: its refusal again, or the order."""
    return _Replay(order).answer()


async def _settle(
    services: CheckoutServices, order: Order, cart_id: str, result: ChargeResult
) -> tuple[Order, bool]:
    """Record the charge's outcome; (order, whether this call moved it out of pending).

    An UNKNOWN outcome (a provider may have charged) leaves the order pending with its
    stock held: the reconciler asks the providers and settles it.
    """
    async with services.db.write() as session:
        order = (
            await session.execute(select(Order).where(Order.id == order.id).with_for_update())
        ).scalar_one()
        if result.status == PaymentStatus.UNKNOWN:
            await session.refresh(order, ["events", "lines"])
            return order, False
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
            refusal = _refusal(result, order.id)
            order.checkout_outcome = {
                "code": refusal.code,
                "message": refusal.message,
                "details": refusal.details,
            }
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
        return _replay(existing), True
    try:
        return await _checkout(services, user, cart_id, body, idempotency_key, client_ip), False
    except _Replay as replay:
        return replay.answer(), True


class _Replay(Exception):
    """An order with this Idempotency-Key exists already: answer as its checkout did
    (read while the order is loaded)."""

    def __init__(self, order: Order) -> None:
        self.outcome = order.checkout_outcome
        self.view = orders.order_view(order)

    def answer(self) -> OrderOut:
        outcome = self.outcome
        if outcome and outcome.get("code") in _REPLAYABLE:
            raise _REPLAYABLE[outcome["code"]](
                outcome.get("message", ""), replayed=True, **outcome.get("details", {})
            )
        return self.view


async def _place_and_charge(
    services: CheckoutServices,
    user: User,
    cart_id: str | None,
    body: CheckoutIn,
    key: str,
    client_ip: str | None,
) -> tuple[Order, ChargeResult]:
    if cart_id is None:
        _fail("invalid")
        raise EmptyCart("the cart is empty")
    async with services.db.read() as session:
        lines = await cart_lines(session, cart_id)
    if not lines:
        existing = await _existing_order(services.db, user.id, key)
        if existing is not None:  # a concurrent request with this key emptied the cart
            raise _Replay(existing)
        _fail("invalid")
        raise EmptyCart("the cart is empty")
    _check_currencies(lines, services.currency)
    snapshot = _snapshot(lines)
    parcel = _parcel(lines, body.address.country, body.address.postal_code, services.currency)
    quotes = {q.option_id: q for q in await _quotes(services, parcel)}
    option = quotes.get(body.shipping_option)
    if option is None:
        _fail("invalid")
        offered = ", ".join(sorted(quotes)) or "none (no delivery to this destination)"
        raise ShippingOptionUnavailable(
            f"shipping_option {body.shipping_option!r} is not offered for this cart and address; "
            f"offered: {offered}"
        )
    if option.currency != services.currency:
        _fail("invalid")
        raise CurrencyMismatch(
            f"shipping option {option.option_id} is quoted in {option.currency}, not in "
            f"{services.currency}, the currency this shop charges; choose another option",
            shipping_option=option.option_id,
        )
    reference = f"SO-{uuid.uuid4().hex[:20].upper()}"
    # The checkout attempt, not the order: a challenged attempt sent again with the
    # customer's TOTP code (same Idempotency-Key) is the same attempt for velocity.
    attempt = _attempt_reference(user.id, key)
    verdict = await services.risk.assess(
        RiskRequest(
            customer_reference=customer_reference(user.id),
            account_created_at=user.created_at,
            amount_minor=parcel.declared_value_minor + option.amount_minor,
            currency=services.currency,
            payment_token=body.payment.token,
            ip_address=client_ip or "unknown",
            billing_country=body.billing_country or body.address.country,
            shipping_country=body.address.country,
            order_reference=attempt,
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
        except DomainError:
            _fail("fraud_challenged")
            raise
    try:
        order = await _place_or_replay(
            services, user, cart_id, body, option, key, reference, verdict, snapshot
        )
    except _Replay:  # a request with this key won: its attempt goes on counting
        raise
    except Exception:
        # No order, so no charge (out of stock, the cart changed, the database refused the
        # order): the customer will try again, and this attempt, which reached no payment
        # provider, must not make that retry look like card testing.
        await _withdraw(services.risk, attempt)
        raise
    metrics.orders_total.labels("placed").inc()
    return order, await _charge(services, order, user, body)


async def _checkout(
    services: CheckoutServices,
    user: User,
    cart_id: str | None,
    body: CheckoutIn,
    key: str,
    client_ip: str | None,
) -> OrderOut:
    # Every partner call up to the charge shares one deadline; recording the outcome
    # (database only) and refunding a duplicate charge are not cut short by it.
    with deadline(services.deadline_seconds):
        order, result = await _place_and_charge(services, user, cart_id, body, key, client_ip)
    assert cart_id is not None  # _place_and_charge refuses a checkout without a cart
    order, settled_here = await _settle(services, order, cart_id, result)
    await catalog.invalidate_products(services.cache, *(line.sku for line in order.lines))
    if result.status == PaymentStatus.APPROVED:
        if settled_here:
            metrics.orders_total.labels("paid").inc()
            metrics.revenue_minor_units_total.labels(order.currency).inc(order.total_minor)
        elif result.provider_reference and order.payment_reference != result.provider_reference:
            # Paid meanwhile by another charge (its webhook came first): this one is a duplicate.
            await fulfilment.refund_duplicate(
                services.payments,
                provider=result.provider,
                charge_id=result.provider_reference,
                amount_minor=order.total_minor,
                currency=order.currency,
                order_reference=order.reference,
            )
        return orders.order_view(order)
    if result.status == PaymentStatus.UNKNOWN:
        log.warning(
            "payment of %s unknown (%s at %s): left pending for the reconciler",
            order.reference,
            result.reason,
            result.provider,
        )
        return orders.order_view(order)
    if not settled_here:  # settled meanwhile (a webhook, the reconciler): that one decided
        return orders.order_view(order)
    metrics.orders_total.labels("payment_failed").inc()
    _fail("payment_declined" if result.status == PaymentStatus.DECLINED else "payment_error")
    raise _refusal(result, order.id)
