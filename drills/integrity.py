"""Every order accounted for after a drill: what the customers were told (the load's
ledger, loadtests/ledger.py) against the shop's database, and the shop's own reconciler
(`python -m app reconcile`, run as the PaymentCircuitOpen runbook runs it) for the
payment ledgers and the mail outbox.

A discrepancy is any of: an order a customer was told succeeded (201 with its id) that
is missing, exists twice or under another id, or does not keep money; its confirmation
mail neither sent nor queued (after a mail outage, once the outbox drained: not sent); an
order a customer was told is pending (202: the payment's answer was lost) that is
missing, or still pending once the drill is over (the shop's reconciler settles it, paid
or cancelled), or paid without its confirmation mail; a line of the reconciler (paid
without a charge, a charge without an order, a double capture, a refund missing, a mail
missing).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadtests import ledger

from . import lab_access, runbook

MONEY_KEPT = ("paid", "packed", "shipped", "delivered", "refund_pending")
PENDING = "pending_payment"
MAIL_OK = ("pending", "sent")
# The runbook block that runs the reconciler on an app server (exit 0: no discrepancy).
RECONCILE_RUNBOOK = "PaymentCircuitOpen"
RECONCILE_EXPECT = "python -m app reconcile"


@dataclass
class Accounting:
    requests_sent: int = 0
    requests_failed: int = 0  # no answer or a 5xx (loadtests.ledger.unavailable)
    requests_refused: int = 0  # another unexpected answer, a 4xx (a fraud block, say)
    checkouts_attempted: int = 0
    checkouts_confirmed: int = 0  # answered 201
    checkouts_pending: int = 0  # answered 202: placed, the payment's answer lost
    orders_in_database: int = 0  # of the attempts on the ledger
    orders_paid: int = 0
    mails_sent_or_queued: int = 0
    mails_sent: int = 0
    reconcile_exit: int | None = None
    discrepancies: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Orders = dict[str, list[dict[str, str]]]  # idempotency key -> its orders


def _orders_for(keys: list[str]) -> Orders:
    """Idempotency key -> the orders with it, their status and confirmation mail's state."""
    if not keys:
        return {}
    # The keys are the load's own UUIDs; anything else in the ledger is refused here.
    quoted = ",".join(f"'{uuid.UUID(key)}'" for key in keys)
    rows = lab_access.psql(
        "SELECT o.idempotency_key, o.id, o.status, coalesce(m.state, '') FROM orders o "  # noqa: S608 - UUIDs only
        "LEFT JOIN mail_outbox m ON m.dedupe_key = 'order:' || o.reference || ':confirmation' "
        f"WHERE o.idempotency_key IN ({quoted})"
    )
    found: Orders = {}
    for key, order_id, status, mail in rows:
        found.setdefault(key, []).append({"id": order_id, "status": status, "mail": mail})
    return found


def answers(load_dir: Path) -> tuple[list[str], dict[str, int], dict[str, int]]:
    """The checkouts attempted (keys), and those answered 201 and 202 (key -> order id)."""
    checkouts = ledger.read_lines(load_dir / ledger.CHECKOUTS_FILE)
    attempted = [c["key"] for c in checkouts if c["event"] == "attempted"]
    confirmed = {c["key"]: c["order_id"] for c in checkouts if c["event"] == "confirmed"}
    pending = {c["key"]: c["order_id"] for c in checkouts if c["event"] == "pending"}
    return attempted, confirmed, pending


def unsettled(load_dir: Path) -> list[int]:
    """The orders answered 202 that are still pending payment."""
    _, _, pending = answers(load_dir)
    orders = _orders_for(list(pending))
    return sorted(
        int(o["id"]) for found in orders.values() for o in found if o["status"] == PENDING
    )


def discrepancies(
    confirmed: dict[str, int],
    pending: dict[str, int],
    orders: Orders,
    mail_ok: tuple[str, ...] = MAIL_OK,
) -> list[str]:
    """What the database holds against what the customers were told: `confirmed` and
    `pending` map idempotency keys to the order ids of the 201 and 202 answers."""
    found_wrong: list[str] = []
    told = [(key, order_id, "confirmed") for key, order_id in sorted(confirmed.items())]
    told += [(key, order_id, "pending") for key, order_id in sorted(pending.items())]
    for key, order_id, answer in told:
        found = orders.get(key, [])
        if len(found) != 1:
            found_wrong.append(f"{answer} order {order_id} ({key}): {len(found)} rows")
            continue
        (order,) = found
        if int(order["id"]) != order_id:
            found_wrong.append(f"{answer} order {order_id} ({key}) is {order['id']}")
        if answer == "pending" and order["status"] == PENDING:
            found_wrong.append(f"pending order {order_id} was never settled")
            continue
        if answer == "pending" and order["status"] not in MONEY_KEPT:
            continue  # settled as not paid (nothing charged): the reconcile command checks
        if order["status"] not in MONEY_KEPT:
            found_wrong.append(f"confirmed order {order_id} is {order['status']}")
        if order["mail"] not in mail_ok:
            state = order["mail"] or "missing"
            found_wrong.append(f"{answer} order {order_id}: confirmation mail {state}")
    return found_wrong


def account(load_dir: Path, mail_delivered: bool = False) -> Accounting:
    """The drill's books, from its load's ledger, the database and the reconciler; with
    `mail_delivered`, a confirmation mail still queued is a discrepancy."""
    books = Accounting()
    requests = ledger.read_lines(load_dir / ledger.REQUESTS_FILE)
    books.requests_sent = len(requests)
    books.requests_failed = sum(1 for r in requests if ledger.unavailable(r))
    books.requests_refused = sum(1 for r in requests if r.get("error")) - books.requests_failed
    attempted, confirmed, pending = answers(load_dir)
    books.checkouts_attempted = len(attempted)
    books.checkouts_confirmed = len(confirmed)
    books.checkouts_pending = len(pending)
    orders = _orders_for(attempted)
    books.orders_in_database = sum(len(found) for found in orders.values())
    books.orders_paid = sum(
        1 for found in orders.values() for o in found if o["status"] in MONEY_KEPT
    )
    books.mails_sent_or_queued = sum(
        1 for found in orders.values() for o in found if o["mail"] in MAIL_OK
    )
    books.mails_sent = sum(1 for found in orders.values() for o in found if o["mail"] == "sent")
    mail_ok = ("sent",) if mail_delivered else MAIL_OK
    books.discrepancies = discrepancies(confirmed, pending, orders, mail_ok)
    reconciled = runbook.run_mitigation(RECONCILE_RUNBOOK, 1, RECONCILE_EXPECT, check=False)
    books.reconcile_exit = reconciled["exit_code"]
    if reconciled["exit_code"] != 0:
        lines = [line for line in reconciled["stdout"].splitlines() if line.strip()]
        books.discrepancies += [f"reconcile: {line}" for line in lines] or [
            f"reconcile exited {reconciled['exit_code']}: {reconciled['stderr'][-500:]}"
        ]
    return books


def write(books: Accounting, path: Path) -> None:
    path.write_text(json.dumps(books.as_dict(), indent=2) + "\n", encoding="utf-8")
