"""Order mail: what the customer is told, written to the outbox in the order's own transaction.

The confirmation (order paid) and the shipping notice (order shipped) are
enqueued with the state change that causes them, in the same database
transaction: a committed change always has its mail waiting in the outbox, and
a rolled-back one never does. The outbox worker (app/partners/mail, started in
every serving process by app/main.py) sends them later, under the sending
quota, retrying until the SMTP server takes them. Each mail has a dedupe key
per order and kind, so a repeated transition never mails twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Order, User
from app.partners.interfaces import MailMessage
from app.partners.mail import OutboxEntry


class TransactionalOutbox(Protocol):
    async def enqueue_in(
        self, session: AsyncSession, message: MailMessage, *, dedupe_key: str, now: datetime
    ) -> OutboxEntry: ...


def _money(amount_minor: int, currency: str) -> str:
    return f"{amount_minor / 100:.2f} {currency}"


def _address(order: Order) -> str:
    a = order.shipping_address
    parts = [a.get("full_name"), a.get("line1"), a.get("line2"), a.get("city")]
    place = " ".join(str(p) for p in (a.get("postal_code"), a.get("country")) if p)
    return "\n".join(str(p) for p in [*parts, place] if p)


def confirmation_message(order: Order, email: str, shop_name: str) -> MailMessage:
    lines = "\n".join(
        f"  {line.quantity} x {line.name} ({line.sku})  "
        f"{_money(line.unit_price_minor * line.quantity, order.currency)}"
        for line in order.lines
    )
    body = (
        f"Thank you for your order {order.reference}.\n\n"
        f"{lines}\n\n"
        f"Subtotal: {_money(order.subtotal_minor, order.currency)}\n"
        f"Shipping ({order.shipping_option}): {_money(order.shipping_minor, order.currency)}\n"
        f"Total paid: {_money(order.total_minor, order.currency)}\n\n"
        f"Ship to:\n{_address(order)}\n\n"
        "We will write again when the parcel is on its way.\n"
        f"-- {shop_name}\n"
    )
    return MailMessage(
        to=email,
        subject=f"Your order {order.reference} is confirmed",
        body_text=body,
        kind="order_confirmation",
        headers={"X-Order-Reference": order.reference},
    )


def shipping_message(order: Order, email: str, shop_name: str) -> MailMessage:
    body = (
        f"Your order {order.reference} is on its way.\n\n"
        f"Courier: {order.courier or '-'}\n"
        f"Tracking number: {order.tracking_number or '-'}\n"
        f"Follow it in your account: /api/orders/{order.id}/tracking\n\n"
        f"Ship to:\n{_address(order)}\n\n"
        f"-- {shop_name}\n"
    )
    return MailMessage(
        to=email,
        subject=f"Your order {order.reference} has shipped",
        body_text=body,
        kind="shipping_update",
        headers={"X-Order-Reference": order.reference},
    )


@dataclass(frozen=True)
class OrderMailer:
    outbox: TransactionalOutbox
    shop_name: str = "Export shop"

    async def _email(self, session: AsyncSession, order: Order) -> str:
        email = await session.scalar(select(User.email).where(User.id == order.user_id))
        return str(email)

    async def order_paid(self, session: AsyncSession, order: Order) -> None:
        """Enqueue the confirmation inside `session`'s transaction (the one marking it paid)."""
        message = confirmation_message(order, await self._email(session, order), self.shop_name)
        await self.outbox.enqueue_in(
            session,
            message,
            dedupe_key=f"order:{order.reference}:confirmation",
            now=datetime.now(UTC),
        )

    async def order_shipped(self, session: AsyncSession, order: Order) -> None:
        message = shipping_message(order, await self._email(session, order), self.shop_name)
        await self.outbox.enqueue_in(
            session, message, dedupe_key=f"order:{order.reference}:shipped", now=datetime.now(UTC)
        )
