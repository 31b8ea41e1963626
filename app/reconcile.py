"""`python -m app reconcile`: where the shop's orders, the payment providers' ledgers and
the mail outbox disagree, one line per discrepancy, then a summary.

Kinds (the first word of each line; `kind` in --json):

- paid_without_charge: an order that keeps money (paid, packed, shipped, delivered,
  refund_pending) whose payment_reference is not a succeeded, not fully refunded charge
  at its payment_provider for the order's total and currency (and for this order).
- charge_without_order: a succeeded, not fully refunded charge whose order_reference is
  no order that keeps money (or no order at all), unless it is the payment_reference of
  an order that keeps money, or of a cancelled/refunded order (then it is reported once,
  as refund_missing_at_provider).
- double_capture: more than one succeeded, not fully refunded charge for one
  order_reference, across every provider.
- refund_missing_at_provider: a cancelled or refunded order with a payment_reference
  whose charge is not fully refunded at the provider (or not found there).
- mail_missing: an order that keeps money with no confirmation mail
  (`order:{reference}:confirmation`) pending or sent in mail_outbox (a dead one counts
  as missing); a shipped or delivered one also needs its shipping notice
  (`order:{reference}:shipped`).

Orders changed within the last --settle-seconds (created, paid, refunding) are in
flight and not checked, nor are the charges for them (their checkout or refund may still
be settling). The ledgers are read before the database: the shop places an order before
it charges, so every charge seen has its order committed already, and a charge of a
checkout in flight is always one of an order in flight.

Exit status: 0 no discrepancy, 1 at least one, 2 could not check (a provider or the
database unreachable or answering nonsense, bad settings); the reason goes to stderr
(and to "error" with --json).

Configuration is the shop's: DATABASE_URL (its async URL is read with the synchronous
driver: sqlite+aiosqlite -> sqlite, postgresql+psycopg as is) and the PARTNERS_ payment
settings (PARTNERS_PAYMENTS_BASE_URL, PARTNERS_PAYMENT_ROUTES, PARTNERS_PAYMENTS_API_KEY).
Every provider of every channel of the routes is asked, once, with
GET {base}/{provider}/v1/charges. The sandbox answers with the whole ledger in one page;
a real provider paginates (cursor or page tokens) and filters by date: that is
`_list_charges` below, where the paging loop goes. The whole orders table and the
order mail rows of mail_outbox are read in one snapshot; a very large shop would
window both by date the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import requests
from pydantic import ValidationError
from sqlalchemy import BigInteger, String, column, create_engine, inspect, select, table
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from app.db.types import UTCDateTime

HELP = "list every discrepancy between orders, payment ledgers and the mail outbox"

# Longer than any checkout (the time budget of its partner calls) or refund call takes.
DEFAULT_SETTLE_SECONDS = 30.0
DEFAULT_TIMEOUT_SECONDS = 10.0

MONEY_KEPT = frozenset({"paid", "packed", "shipped", "delivered", "refund_pending"})
REFUND_RECORDED = frozenset({"cancelled", "refunded"})
SHIPPING_NOTICE_DUE = frozenset({"shipped", "delivered"})
MAIL_OK = frozenset({"pending", "sent"})


class Kind(StrEnum):
    PAID_WITHOUT_CHARGE = "paid_without_charge"
    CHARGE_WITHOUT_ORDER = "charge_without_order"
    DOUBLE_CAPTURE = "double_capture"
    REFUND_MISSING_AT_PROVIDER = "refund_missing_at_provider"
    MAIL_MISSING = "mail_missing"


class CheckFailed(Exception):
    """The check could not be made (exit 2); the message says why."""


# --- what is compared -------------------------------------------------------------------


@dataclass(frozen=True)
class Charge:
    """One charge as a provider lists it."""

    id: str
    provider: str
    amount_minor: int
    currency: str
    order_reference: str
    status: str  # succeeded | declined
    refunded_minor: int
    idempotency_key: str
    created: float | None  # epoch seconds, the provider's clock

    @property
    def captured(self) -> bool:
        """Money held: succeeded and not fully refunded."""
        return self.status == "succeeded" and self.refunded_minor < self.amount_minor

    def as_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "id": self.id,
            "status": self.status,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "refunded_minor": self.refunded_minor,
            "order_reference": self.order_reference,
            "idempotency_key": self.idempotency_key,
        }


@dataclass(frozen=True)
class ShopOrder:
    reference: str
    status: str
    currency: str
    total_minor: int
    payment_channel: str
    payment_provider: str | None
    payment_reference: str | None
    refund_to: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Discrepancy:
    kind: Kind
    detail: str
    order: ShopOrder | None = None
    provider: str | None = None
    charge_id: str | None = None
    charges: tuple[Charge, ...] = ()
    order_reference: str | None = None  # when there is no order row

    @property
    def reference(self) -> str | None:
        return self.order.reference if self.order else self.order_reference

    def line(self) -> str:
        order = self.order
        total = f"{order.total_minor} {order.currency}" if order else "-"
        providers = ",".join(c.provider for c in self.charges) or self.provider or "-"
        charge_ids = ",".join(c.id for c in self.charges) or self.charge_id or "-"
        if self.charges:
            currencies = sorted({c.currency for c in self.charges})
            charged = "+".join(str(c.amount_minor) for c in self.charges)
            refunded = "+".join(str(c.refunded_minor) for c in self.charges)
            charged = f"{charged} {'/'.join(currencies)} refunded={refunded}"
        else:
            charged = "-"
        return (
            f"{self.kind} order={self.reference or '-'} status={order.status if order else '-'}"
            f" total={total} provider={providers} charge={charge_ids} charged={charged}"
            f" -- {self.detail}"
        )

    def as_json(self) -> dict[str, Any]:
        order = self.order
        return {
            "kind": str(self.kind),
            "order_reference": self.reference,
            "order_status": order.status if order else None,
            "order_total_minor": order.total_minor if order else None,
            "order_currency": order.currency if order else None,
            "provider": self.provider,
            "charge_id": self.charge_id,
            "charges": [c.as_json() for c in self.charges],
            "detail": self.detail,
        }


@dataclass
class Report:
    discrepancies: list[Discrepancy]
    orders_checked: int
    orders_in_flight: int
    charges_checked: int
    charges_in_flight: int
    providers: list[str]
    payments_base_url: str
    settle_seconds: float
    checked_at: datetime
    counts: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        found = Counter(d.kind for d in self.discrepancies)
        self.counts = {str(kind): found.get(kind, 0) for kind in Kind}

    @property
    def exit_code(self) -> int:
        return 1 if self.discrepancies else 0

    def summary_line(self) -> str:
        total = len(self.discrepancies)
        what = f"{total} discrepanc{'y' if total == 1 else 'ies'}" if total else "no discrepancy"
        counts = " ".join(f"{kind}={n}" for kind, n in self.counts.items())
        return (
            f"summary: {what} ({counts}); orders checked={self.orders_checked}"
            f" (in flight, not checked={self.orders_in_flight});"
            f" charges checked={self.charges_checked}"
            f" (in flight={self.charges_in_flight}); providers asked={len(self.providers)}"
            f" ({' '.join(self.providers)}) at {self.payments_base_url};"
            f" settle-seconds={self.settle_seconds:g}"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": not self.discrepancies,
            "exit_code": self.exit_code,
            "error": None,
            "discrepancies": [d.as_json() for d in self.discrepancies],
            "summary": {
                "counts": self.counts,
                "discrepancies": len(self.discrepancies),
                "orders_checked": self.orders_checked,
                "orders_in_flight": self.orders_in_flight,
                "charges_checked": self.charges_checked,
                "charges_in_flight": self.charges_in_flight,
                "providers_asked": self.providers,
                "payments_base_url": self.payments_base_url,
                "settle_seconds": self.settle_seconds,
                "checked_at": self.checked_at.isoformat(),
            },
        }


# --- the comparison (no I/O) -----------------------------------------------------------


def find_discrepancies(
    orders: Sequence[ShopOrder],
    ledgers: Mapping[str, Sequence[Charge]],
    mail_states: Mapping[str, str],
    *,
    now: datetime,
    settle_seconds: float,
) -> tuple[list[Discrepancy], int, int]:
    """(discrepancies, orders in flight, charges in flight); `mail_states` is
    dedupe_key -> outbox state."""
    cutoff = now - timedelta(seconds=settle_seconds)
    settled = [o for o in orders if max(o.created_at, o.updated_at) <= cutoff]
    in_flight = {o.reference for o in orders} - {o.reference for o in settled}
    by_reference = {o.reference: o for o in orders}
    asked = set(ledgers)
    charges = [c for listed in ledgers.values() for c in listed]
    by_key = {(c.provider, c.id): c for c in charges}

    def charge_settled(charge: Charge) -> bool:
        return charge.order_reference not in in_flight

    found: list[Discrepancy] = []

    # 1 and 4: what each order says it holds, against the provider's charge.
    for order in settled:
        key = (order.payment_provider, order.payment_reference)
        charge = by_key.get(key) if order.payment_reference else None
        if order.status in MONEY_KEPT:
            problem = _paid_problem(order, charge, asked)
            if problem:
                found.append(
                    Discrepancy(
                        Kind.PAID_WITHOUT_CHARGE,
                        problem,
                        order=order,
                        provider=order.payment_provider,
                        charge_id=order.payment_reference,
                        charges=(charge,) if charge else (),
                    )
                )
        elif order.status in REFUND_RECORDED and order.payment_reference:
            problem = _refund_problem(order, charge, asked)
            if problem:
                found.append(
                    Discrepancy(
                        Kind.REFUND_MISSING_AT_PROVIDER,
                        problem,
                        order=order,
                        provider=order.payment_provider,
                        charge_id=order.payment_reference,
                        charges=(charge,) if charge else (),
                    )
                )

    # 2: money held for no order that keeps it.
    # (A cancelled or refunded order's own charge is reported once, as a missing refund.)
    accounted = {
        (o.payment_provider, o.payment_reference)
        for o in orders
        if o.payment_reference and (o.status in MONEY_KEPT or o.status in REFUND_RECORDED)
    }
    open_charges = [c for c in charges if c.captured and charge_settled(c)]
    for charge in open_charges:
        order = by_reference.get(charge.order_reference)
        if order is not None and order.status in MONEY_KEPT:
            continue
        if (charge.provider, charge.id) in accounted:
            continue
        if order is None:
            detail = f"no order {charge.order_reference} in the shop"
        elif order.status == "pending_payment":
            detail = (
                "the order is still pending_payment: its checkout never recorded this charge"
                " (the shop's reconciler settles it after RECONCILE_AFTER_SECONDS)"
            )
        else:
            detail = f"the order is {order.status}: the money was taken and not given back"
        found.append(
            Discrepancy(
                Kind.CHARGE_WITHOUT_ORDER,
                detail,
                order=order,
                provider=charge.provider,
                charge_id=charge.id,
                charges=(charge,),
                order_reference=charge.order_reference,
            )
        )

    # 3: more than one capture for one order.
    per_order: dict[str, list[Charge]] = defaultdict(list)
    for charge in open_charges:
        per_order[charge.order_reference].append(charge)
    for reference, captures in per_order.items():
        if len(captures) < 2:
            continue
        captures.sort(key=lambda c: (c.created or 0, c.provider, c.id))
        order = by_reference.get(reference)
        kept = next(
            (
                c
                for c in captures
                if order is not None
                and (c.provider, c.id) == (order.payment_provider, order.payment_reference)
            ),
            None,
        )
        detail = f"{len(captures)} captured charges for one order"
        detail += (
            f"; the order keeps {kept.provider}/{kept.id}, refund the others"
            if kept
            else "; the order keeps none of them"
        )
        found.append(
            Discrepancy(
                Kind.DOUBLE_CAPTURE,
                detail,
                order=order,
                charges=tuple(captures),
                order_reference=reference,
            )
        )

    # 5: the customer was told (or is about to be).
    for order in settled:
        if order.status not in MONEY_KEPT:
            continue
        mails = ["confirmation"] + (["shipped"] if order.status in SHIPPING_NOTICE_DUE else [])
        for mail in mails:
            dedupe_key = f"order:{order.reference}:{mail}"
            state = mail_states.get(dedupe_key)
            if state in MAIL_OK:
                continue
            what = "confirmation mail" if mail == "confirmation" else "shipping notice"
            detail = (
                f"no {what} ({dedupe_key}) in the outbox"
                if state is None
                else f"the {what} ({dedupe_key}) is {state} in the outbox: it was never sent"
            )
            found.append(
                Discrepancy(
                    Kind.MAIL_MISSING,
                    detail,
                    order=order,
                    provider=order.payment_provider,
                    charge_id=order.payment_reference,
                )
            )

    rank = {kind: i for i, kind in enumerate(Kind)}
    found.sort(key=lambda d: (rank[d.kind], d.reference or "", d.charge_id or ""))
    charges_in_flight = sum(1 for c in charges if c.captured and not charge_settled(c))
    return found, len(in_flight), charges_in_flight


def _paid_problem(order: ShopOrder, charge: Charge | None, asked: set[str]) -> str | None:
    provider, reference = order.payment_provider, order.payment_reference
    if not reference:
        return "the order keeps money but has no payment reference"
    if provider not in asked:
        return f"its provider {provider!r} is not in PARTNERS_PAYMENT_ROUTES: not asked"
    if charge is None:
        return f"no charge {reference} at {provider}"
    if charge.status != "succeeded":
        return f"the charge is {charge.status} at {provider}: no money was taken"
    if charge.refunded_minor >= charge.amount_minor:
        if order.status == "refund_pending":
            return (
                f"the charge is fully refunded at {provider} but the order is still"
                f" refund_pending (refund_to={order.refund_to or '-'})"
            )
        return f"the charge is fully refunded at {provider}: the shop no longer has the money"
    if (charge.amount_minor, charge.currency) != (order.total_minor, order.currency):
        return (
            f"the charge is {charge.amount_minor} {charge.currency},"
            f" the order's total {order.total_minor} {order.currency}"
        )
    if charge.order_reference != order.reference:
        return f"the charge is for order {charge.order_reference}"
    return None


def _refund_problem(order: ShopOrder, charge: Charge | None, asked: set[str]) -> str | None:
    provider, reference = order.payment_provider, order.payment_reference
    if provider not in asked:
        return (
            f"its provider {provider!r} is not in PARTNERS_PAYMENT_ROUTES: the refund cannot"
            " be confirmed"
        )
    if charge is None:
        return f"no charge {reference} at {provider}: the refund cannot be confirmed"
    if charge.captured:
        held = charge.amount_minor - charge.refunded_minor
        return (
            f"the order is {order.status} but {held} {charge.currency} of the charge are"
            f" still captured at {provider}"
        )
    return None


# --- the providers ----------------------------------------------------------------------


def providers_of(routes: Mapping[Any, Iterable[str]]) -> list[str]:
    """Every provider of every channel, once, in the routes' order."""
    seen: dict[str, None] = {}
    for providers in routes.values():
        for provider in providers:
            seen.setdefault(provider, None)
    return list(seen)


def _charge_from(provider: str, item: Any, url: str) -> Charge:
    try:
        return Charge(
            id=str(item["id"]),
            provider=str(item.get("provider") or provider),
            amount_minor=int(item["amount_minor"]),
            currency=str(item["currency"]),
            order_reference=str(item["order_reference"]),
            status=str(item["status"]),
            refunded_minor=int(item.get("refunded_minor") or 0),
            idempotency_key=str(item.get("idempotency_key") or ""),
            created=float(item["created"]) if item.get("created") is not None else None,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckFailed(
            f"payment provider {provider} at {url} listed a charge without {exc}: {item!r:.200}"
        ) from exc


def _reason(exc: requests.RequestException) -> str:
    """urllib3's innermost reason, without the connection pool's wording around it."""
    inner: object = exc.args[0] if exc.args else exc
    inner = getattr(inner, "reason", inner)
    text = str(inner)
    return text.split("): ", 1)[1] if "): " in text else text


def _list_charges(
    http: requests.Session, base_url: str, provider: str, timeout: float, verify: str | bool
) -> list[Charge]:
    """Every charge `provider` holds. The sandbox answers with one page ({"items": [...]});
    a real provider paginates: loop here on its cursor until the last page."""
    url = f"{base_url}/{provider}/v1/charges"
    try:
        # per request: a session's `verify` loses to REQUESTS_CA_BUNDLE in the environment
        response = http.get(url, timeout=timeout, verify=verify)
    except requests.Timeout as exc:
        raise CheckFailed(
            f"payment provider {provider} at {url} did not answer within {timeout:g} s"
        ) from exc
    except requests.RequestException as exc:
        raise CheckFailed(
            f"payment provider {provider} at {url} is unreachable: {_reason(exc)}"
        ) from exc
    if response.status_code != 200:
        raise CheckFailed(
            f"payment provider {provider} at {url} answered HTTP {response.status_code}:"
            f" {response.text[:200]}"
        )
    try:
        items = response.json()["items"]
        if not isinstance(items, list):
            raise TypeError("items is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckFailed(
            f"payment provider {provider} at {url} answered something that is not a charge"
            f" list ({exc}): {response.text[:200]}"
        ) from exc
    return [_charge_from(provider, item, url) for item in items]


def fetch_ledgers(
    base_url: str,
    providers: Sequence[str],
    *,
    api_key: str | None,
    timeout: float,
    ca_file: str | None = None,
) -> dict[str, list[Charge]]:
    """Every provider's charges; over HTTPS verified against `ca_file` (the shop's
    partner CA bundle), or requests' own bundle when None."""
    headers = {"Accept": "application/json", "User-Agent": "shop-reconcile"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    with requests.Session() as http:
        http.headers.update(headers)
        return {p: _list_charges(http, base_url, p, timeout, ca_file or True) for p in providers}


# --- the database -----------------------------------------------------------------------

_ORDERS = table(
    "orders",
    column("reference", String),
    column("status", String),
    column("currency", String),
    column("total_minor", BigInteger),
    column("payment_channel", String),
    column("payment_provider", String),
    column("payment_reference", String),
    column("refund_to", String),
    column("created_at", UTCDateTime()),
    column("updated_at", UTCDateTime()),
)
_OUTBOX = table("mail_outbox", column("dedupe_key", String), column("state", String))


def sync_url(database_url: str) -> URL:
    """The shop's async URL for a synchronous engine (psycopg 3 serves both)."""
    url = make_url(database_url)
    if url.drivername == "sqlite+aiosqlite":
        url = url.set(drivername="sqlite")
    return url


def _read(conn: Connection) -> tuple[list[ShopOrder], dict[str, str]]:
    has_refund_to = any(c["name"] == "refund_to" for c in inspect(conn).get_columns("orders"))
    wanted = [c for c in _ORDERS.c if has_refund_to or c.name != "refund_to"]
    orders = [
        ShopOrder(
            reference=row.reference,
            status=row.status,
            currency=row.currency,
            total_minor=int(row.total_minor),
            payment_channel=row.payment_channel,
            payment_provider=row.payment_provider,
            payment_reference=row.payment_reference,
            refund_to=getattr(row, "refund_to", None),
            created_at=row.created_at,
            updated_at=row.updated_at or row.created_at,
        )
        for row in conn.execute(select(*wanted))
    ]
    mail_rows = conn.execute(
        select(_OUTBOX.c.dedupe_key, _OUTBOX.c.state).where(_OUTBOX.c.dedupe_key.like("order:%"))
    )
    return orders, {key: state for key, state in mail_rows}


def read_shop(database_url: str) -> tuple[list[ShopOrder], dict[str, str]]:
    """Orders and order mail states, read in one snapshot."""
    url = sync_url(database_url)
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        path = url.database or ""
        if path in ("", ":memory:") or not Path(path).is_file():
            raise CheckFailed(f"the database file of DATABASE_URL={shown} does not exist")
    engine = create_engine(url)
    try:
        options = (
            {} if url.get_backend_name() == "sqlite" else {"isolation_level": "REPEATABLE READ"}
        )
        with engine.connect().execution_options(**options) as conn, conn.begin():
            return _read(conn)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise CheckFailed(f"cannot read the database at {shown}: {reason}") from exc
    finally:
        engine.dispose()


# --- the command ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print one JSON report (stdout) instead of lines"
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=DEFAULT_SETTLE_SECONDS,
        metavar="S",
        help="orders changed and charges made within S seconds are in flight, not checked"
        f" (default {DEFAULT_SETTLE_SECONDS:g})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="S",
        help=f"timeout of each provider call (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )


def reconcile(*, settle_seconds: float, timeout: float) -> Report:
    """Read the settings, the ledgers, then the database; raises CheckFailed."""
    from app.partners.settings import PartnersSettings, trusted_ca_file
    from app.settings import Settings

    try:
        database_url = Settings().database_url
        partners = PartnersSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise CheckFailed(f"bad settings: {problems}") from exc
    base_url = partners.payments_base_url.rstrip("/")
    providers = providers_of(partners.payment_routes)
    api_key = partners.payments_api_key.get_secret_value() if partners.payments_api_key else None
    ledgers = fetch_ledgers(
        base_url, providers, api_key=api_key, timeout=timeout, ca_file=trusted_ca_file(partners)
    )
    orders, mail_states = read_shop(database_url)
    now = datetime.now(UTC)
    found, orders_in_flight, charges_in_flight = find_discrepancies(
        orders, ledgers, mail_states, now=now, settle_seconds=settle_seconds
    )
    return Report(
        discrepancies=found,
        orders_checked=len(orders) - orders_in_flight,
        orders_in_flight=orders_in_flight,
        charges_checked=sum(len(listed) for listed in ledgers.values()),
        charges_in_flight=charges_in_flight,
        providers=providers,
        payments_base_url=base_url,
        settle_seconds=settle_seconds,
        checked_at=now,
    )


def _could_not_check(reason: str, *, as_json: bool) -> int:
    print(f"reconcile: could not check: {reason}", file=sys.stderr)
    if as_json:
        print(json.dumps({"ok": False, "exit_code": 2, "error": reason, "discrepancies": []}))
    return 2


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        if args.settle_seconds < 0 or args.timeout <= 0:
            raise CheckFailed("--settle-seconds must be >= 0 and --timeout > 0")
        report = reconcile(settle_seconds=args.settle_seconds, timeout=args.timeout)
    except CheckFailed as exc:
        return _could_not_check(str(exc), as_json=args.json)
    except Exception as exc:  # a bug here must not read as "discrepancies found" (exit 1)
        traceback.print_exc()
        return _could_not_check(f"internal error: {exc!r}", as_json=args.json)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        for discrepancy in report.discrepancies:
            print(discrepancy.line())
        print(f"{report.summary_line()}; took {time.monotonic() - started:.1f} s")
    return report.exit_code
