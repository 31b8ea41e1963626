"""The reconciler: every order a checkout or a refund left unsettled is settled.

A checkout commits its order (`pending_payment`, stock held) before it charges,
so a crash, a provider timeout or a lost answer can leave it there; a refund
the provider did not confirm leaves an order `refund_pending`. Periodically,
one runner at a time across every process and host (a lease row in
`job_leases`), the reconciler takes the orders older than `settle_after` and:

- `pending_payment`: asks every provider of the order's channel what it holds
  for the charge's idempotency key. A capture marks the order paid (a second
  capture elsewhere is refunded); no capture anywhere (absent or declined at
  every provider) cancels it and gives the stock back; a provider that cannot
  be asked leaves the order for the next pass (never cancel what may be paid).
- `refund_pending`: asks for the refund again (keyed on the order, so the
  provider refunds once) and moves the order on once it is confirmed.

Its work is counted in `shop_reconciler_orders_total{outcome}`; every process
exports the age of the oldest unsettled order per state
(`shop_orders_oldest_unsettled_age_seconds{state}`) for the alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app.db.models import JobLease, Order
from app.db.session import Database
from app.db.types import utcnow
from app.domain import fulfilment as fulfilment_service
from app.domain.catalog import invalidate_products
from app.domain.fulfilment import Fulfilment, refund_duplicate
from app.domain.orders import OrderStatus, cancel_unpaid, load_order, mark_paid
from app.observability import metrics
from app.partners.interfaces import ChargeLookup, ChargeState, PaymentChannel

log = logging.getLogger("shop.reconciler")

LEASE_NAME = "reconciler"
UNSETTLED = (OrderStatus.PENDING_PAYMENT, OrderStatus.REFUND_PENDING)


@dataclass(frozen=True)
class ReconcilerPolicy:
    # An order younger than this may still be in its checkout: it must exceed the
    # checkout deadline (PARTNERS_CHECKOUT_DEADLINE_SECONDS) with room to spare.
    settle_after_seconds: float = 120.0
    interval_seconds: float = 30.0
    lease_seconds: float = 90.0
    batch_size: int = 100


def charge_key(order_reference: str) -> str:
    """The idempotency key of an order's charge (the checkout sends the same)."""
    return f"charge-{order_reference}"


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def take_lease(db: Database, owner: str, seconds: float, now: datetime) -> bool:
    """Hold the reconciler's lease until now + seconds, if nobody else holds it."""
    until = now + timedelta(seconds=seconds)
    async with db.write() as session:
        taken = await session.execute(
            update(JobLease)
            .where(
                JobLease.name == LEASE_NAME,
                (JobLease.expires_at < now) | (JobLease.owner == owner),
            )
            .values(owner=owner, expires_at=until)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            return True
    try:
        async with db.write() as session:
            session.add(JobLease(name=LEASE_NAME, owner=owner, expires_at=until))
        return True
    except IntegrityError:
        return False  # held by another process


async def oldest_unsettled(db: Database, now: datetime) -> dict[str, float]:
    """Age in seconds of the oldest order in each unsettled state (0 when there is none)."""
    async with db.read() as session:
        rows = (
            await session.execute(
                select(Order.status, func.min(Order.updated_at))
                .where(Order.status.in_([str(s) for s in UNSETTLED]))
                .group_by(Order.status)
            )
        ).all()
    ages = {str(state): 0.0 for state in UNSETTLED}
    for status, oldest in rows:
        if oldest is not None:
            ages[status] = max(0.0, (now - oldest).total_seconds())
    return ages


async def _due(db: Database, status: OrderStatus, before: datetime, limit: int) -> list[int]:
    async with db.read() as session:
        return list(
            (
                await session.execute(
                    select(Order.id)
                    .where(Order.status == str(status), Order.updated_at < before)
                    .order_by(Order.updated_at, Order.id)
                    .limit(limit)
                )
            ).scalars()
        )


async def settle_pending(db: Database, fulfilment: Fulfilment, order_id: int) -> str:
    """Settle one `pending_payment` order from what the providers hold; the outcome."""
    order = await fulfilment_service.get_order(db, order_id, None)
    if order.status != OrderStatus.PENDING_PAYMENT:
        return "already_settled"
    lookups = await fulfilment.payments.lookup(
        channel=PaymentChannel(order.payment_channel), idempotency_key=charge_key(order.reference)
    )
    captured = [
        found
        for found in lookups
        if found.state == ChargeState.CAPTURED
        and (found.amount_minor, found.currency)
        in ((order.total_minor, order.currency), (None, None))
    ]
    if captured:
        return await _mark_paid(db, fulfilment, order_id, captured)
    if any(found.state == ChargeState.UNKNOWN for found in lookups) or not lookups:
        return "unknown"
    if any(found.state == ChargeState.CAPTURED for found in lookups):
        return "amount_mismatch"  # taken, but not what the order says: a person decides
    return await _cancel(db, fulfilment, order_id, lookups)


async def _mark_paid(
    db: Database, fulfilment: Fulfilment, order_id: int, captured: list[ChargeLookup]
) -> str:
    keep, extra = captured[0], captured[1:]
    async with db.write() as session:
        order = await load_order(session, order_id, None, lock=True)
        if order.status != OrderStatus.PENDING_PAYMENT:
            return "already_settled"
        await mark_paid(
            session,
            order,
            fulfilment.mailer,
            provider=keep.provider,
            reference=keep.provider_reference,
            actor="reconciler",
            note=f"charge {keep.provider_reference} found at {keep.provider}",
        )
        reference, total, currency = order.reference, order.total_minor, order.currency
    metrics.orders_total.labels("paid").inc()
    metrics.revenue_minor_units_total.labels(currency).inc(total)
    for duplicate in extra:
        await refund_duplicate(
            fulfilment.payments,
            provider=duplicate.provider,
            charge_id=duplicate.provider_reference or "",
            amount_minor=duplicate.amount_minor or total,
            currency=duplicate.currency or currency,
            order_reference=reference,
        )
    return "paid"


async def _cancel(
    db: Database, fulfilment: Fulfilment, order_id: int, lookups: list[ChargeLookup]
) -> str:
    states = ", ".join(f"{found.provider} {found.state}" for found in lookups)
    async with db.write() as session:
        order = await load_order(session, order_id, None, lock=True)
        if order.status != OrderStatus.PENDING_PAYMENT:
            return "already_settled"
        await cancel_unpaid(
            session,
            order,
            provider=None,
            actor="reconciler",
            note=f"no charge was taken ({states})",
        )
        skus = [line.sku for line in order.lines]
    metrics.orders_total.labels("payment_failed").inc()
    await invalidate_products(fulfilment.cache, *skus)
    return "cancelled"


async def reconcile_once(
    db: Database, fulfilment: Fulfilment, policy: ReconcilerPolicy, *, now: datetime | None = None
) -> dict[str, int]:
    """One pass over the unsettled orders older than `settle_after`; outcomes counted."""
    at = now or utcnow()
    before = at - timedelta(seconds=policy.settle_after_seconds)
    outcomes: dict[str, int] = {}

    def count(outcome: str) -> None:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        metrics.reconciler_orders_total.labels(outcome).inc()

    for order_id in await _due(db, OrderStatus.PENDING_PAYMENT, before, policy.batch_size):
        try:
            count(await settle_pending(db, fulfilment, order_id))
        except Exception:
            log.exception("reconciling order %s failed", order_id)
            count("error")
    for order_id in await _due(db, OrderStatus.REFUND_PENDING, before, policy.batch_size):
        try:
            view = await fulfilment_service.finish_refund(
                db, fulfilment, order_id, actor="reconciler"
            )
            count("refund_pending" if view.status == OrderStatus.REFUND_PENDING else "refunded")
        except Exception:
            log.exception("finishing the refund of order %s failed", order_id)
            count("error")
    if outcomes:
        log.info("reconciler pass: %s", outcomes)
    return outcomes


class Reconciler:
    """The periodic job of one serving process (every process runs one; one holds the lease)."""

    def __init__(self, db: Database, fulfilment: Fulfilment, policy: ReconcilerPolicy) -> None:
        self.db = db
        self.fulfilment = fulfilment
        self.policy = policy
        self.owner = _owner()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run_once(self) -> dict[str, int] | None:
        """Export the unsettled ages; reconcile when this process holds the lease."""
        now = utcnow()
        for state, age in (await oldest_unsettled(self.db, now)).items():
            metrics.orders_oldest_unsettled_age_seconds.labels(state).set(age)
        if not await take_lease(self.db, self.owner, self.policy.lease_seconds, now):
            return None
        return await reconcile_once(self.db, self.fulfilment, self.policy, now=now)

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconciler pass failed; trying again next interval")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.policy.interval_seconds)
