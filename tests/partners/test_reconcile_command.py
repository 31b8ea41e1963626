"""`python -m app reconcile` as an operator runs it: a subprocess with the shop's environment,
against a real payment sandbox (its own process, so its ledger holds only this test's
charges) and a real database migrated with `python -m app.db migrate` (SQLite and
PostgreSQL). Orders, users and outbox rows are written with SQL; charges and refunds go
through the sandbox's HTTP API with the shop's idempotency keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, insert
from sqlalchemy.engine import Engine

from app.db.models import Order, User
from app.partners.mail.sql import OutboxRow
from app.reconcile import sync_url
from local_processes import free_port, start, stop, wait_for_http

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
OLD = 120  # seconds: settled orders (the default --settle-seconds is 30)
PROVIDERS = ["card-primary", "card-secondary", "wallet", "crypto"]


def _env(database_url: str, payments_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTNERS_")}
    env.pop("DATABASE_URL", None)
    return {
        **env,
        "DATABASE_URL": database_url,
        "PARTNERS_PAYMENTS_BASE_URL": payments_url,
        **extra,
    }


def reconcile(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "app", "reconcile", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture()
def payments_url() -> Iterator[str]:
    port = free_port()
    proc = start(
        [PYTHON, "-m", "app.sandbox.payments", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning"],
        cwd=REPO,
        output=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/healthz", proc, timeout_seconds=30, interval_seconds=0.1)
        yield url
    finally:
        stop(proc)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    migrated = subprocess.run(
        [PYTHON, "-m", "app.db", "migrate"],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrated.returncode == 0, migrated.stderr
    return url


@dataclass
class Shop:
    """The shop's tables and the providers' ledgers, written the way the shop writes them."""

    engine: Engine
    payments: httpx.Client
    user_id: int

    def order(
        self,
        reference: str,
        status: str,
        *,
        total: int = 1999,
        channel: str = "card",
        provider: str | None = None,
        charge_id: str | None = None,
        age: float = OLD,
        refund_to: str | None = None,
    ) -> None:
        at = datetime.now(UTC) - timedelta(seconds=age)
        with self.engine.begin() as conn:
            conn.execute(
                insert(Order.__table__).values(
                    reference=reference,
                    user_id=self.user_id,
                    status=status,
                    currency="EUR",
                    subtotal_minor=total - 499,
                    shipping_minor=499,
                    total_minor=total,
                    shipping_option="swiftpost-standard",
                    shipping_address={"full_name": "Test", "country": "DE"},
                    payment_channel=channel,
                    payment_provider=provider,
                    payment_reference=charge_id,
                    idempotency_key=f"key-{reference}",
                    refund_to=refund_to,
                    created_at=at,
                    updated_at=at,
                )
            )

    def mail(self, reference: str, state: str = "pending", kind: str = "confirmation") -> None:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(
                insert(OutboxRow.__table__).values(
                    dedupe_key=f"order:{reference}:{kind}",
                    recipient="customer@shop.test",
                    subject=f"order {reference}",
                    body_text="...",
                    kind="order_confirmation" if kind == "confirmation" else "shipping_update",
                    headers={},
                    state=state,
                    attempts=0 if state == "pending" else 1,
                    created_at=now,
                    next_attempt_at=now,
                    sent_at=now if state == "sent" else None,
                )
            )

    def charge(
        self,
        provider: str,
        reference: str,
        amount: int = 1999,
        *,
        token: str = "tok_visa",
    ) -> dict[str, Any]:
        response = self.payments.post(
            f"/{provider}/v1/charges",
            json={
                "amount_minor": amount,
                "currency": "EUR",
                "token": token,
                "order_reference": reference,
                "customer_reference": f"user-{self.user_id}",
            },
            headers={"Idempotency-Key": f"charge-{reference}"},
        )
        assert response.status_code in (201, 402), response.text
        return response.json()

    def refund(self, provider: str, charge: dict[str, Any], key: str) -> None:
        response = self.payments.post(
            f"/{provider}/v1/refunds",
            json={"charge_id": charge["id"], "amount_minor": charge["amount_minor"]},
            headers={"Idempotency-Key": key},
        )
        assert response.status_code == 201, response.text


@pytest.fixture()
def shop(database_url: str, payments_url: str) -> Iterator[Shop]:
    engine = create_engine(sync_url(database_url))
    with engine.begin() as conn:
        user_id = conn.execute(
            insert(User.__table__)
            .values(
                email="customer@shop.test",
                password_hash="not-a-hash",
                full_name="Test Customer",
                role="customer",
                is_active=True,
                totp_enabled=False,
                totp_last_counter=0,
                created_at=datetime.now(UTC),
            )
            .returning(User.__table__.c.id)
        ).scalar_one()
    with httpx.Client(base_url=payments_url, timeout=10) as payments:
        yield Shop(engine, payments, user_id)
    engine.dispose()


def _lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stdout.splitlines() if not line.startswith("summary:")]


def _found(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(d["kind"], d["order_reference"]) for d in report["discrepancies"]}


def test_reconcile_is_quiet_on_a_consistent_shop_then_names_every_discrepancy(
    shop: Shop, database_url: str, payments_url: str
) -> None:
    env = _env(database_url, payments_url)

    # --- consistent: every order agrees with the ledgers and the outbox -------------------
    paid = shop.charge("card-primary", "SO-PAID")
    shop.order("SO-PAID", "paid", provider="card-primary", charge_id=paid["id"])
    shop.mail("SO-PAID")
    declined = shop.charge("card-primary", "SO-CANC", token="tok_chargeDeclined")
    assert declined["status"] == "declined"
    shop.order("SO-CANC", "cancelled", provider="card-primary")  # unpaid: no reference
    refunded = shop.charge("wallet", "SO-REFD")
    shop.refund("wallet", refunded, "refund-SO-REFD")
    shop.order("SO-REFD", "refunded", channel="wallet", provider="wallet", charge_id=refunded["id"])
    shop.mail("SO-REFD", "sent")
    shipped = shop.charge("card-secondary", "SO-SHIP")
    shop.order("SO-SHIP", "shipped", provider="card-secondary", charge_id=shipped["id"])
    shop.mail("SO-SHIP", "sent")
    shop.mail("SO-SHIP", "pending", kind="shipped")
    held = shop.charge("crypto", "SO-RPEND")
    shop.order(
        "SO-RPEND", "refund_pending", channel="crypto", provider="crypto", charge_id=held["id"],
        refund_to="cancelled",
    )  # fmt: skip
    shop.mail("SO-RPEND", "sent")
    shop.charge("card-primary", "SO-FLIGHT")  # charged, the checkout not yet settled
    shop.order("SO-FLIGHT", "pending_payment", age=0)

    result = reconcile(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _lines(result) == []
    summary = result.stdout.splitlines()[-1]
    assert summary.startswith("summary: no discrepancy (paid_without_charge=0 "), summary
    assert "orders checked=5 (in flight, not checked=1)" in summary
    assert "charges checked=6 (in flight=1)" in summary
    assert f"providers asked=4 ({' '.join(PROVIDERS)}) at {payments_url}" in summary

    report = json.loads(reconcile(env, "--json").stdout)
    assert report["ok"] is True and report["exit_code"] == 0 and report["discrepancies"] == []
    assert set(report["summary"]["counts"].values()) == {0}
    assert report["summary"]["orders_checked"] == 5
    assert report["summary"]["charges_checked"] == 6
    assert report["summary"]["providers_asked"] == PROVIDERS

    # --- one or two of every kind ---------------------------------------------------------
    # 1. paid, but no such charge; paid, but the charge is for another amount
    shop.order("SO-NOCHG", "paid", provider="card-primary", charge_id="ch_doesnotexist")
    shop.mail("SO-NOCHG")
    short = shop.charge("card-primary", "SO-AMT", amount=1999)
    shop.order("SO-AMT", "paid", total=2500, provider="card-primary", charge_id=short["id"])
    shop.mail("SO-AMT")
    # 2. money taken for no order; money taken for a checkout that never settled
    ghost = shop.charge("crypto", "SO-GHOST")
    stuck = shop.charge("card-primary", "SO-STUCK")
    shop.order("SO-STUCK", "pending_payment")
    # 3. a timed-out primary that charged after all, and the secondary that charged too
    first = shop.charge("card-primary", "SO-DBL")
    second = shop.charge("card-secondary", "SO-DBL")
    shop.order("SO-DBL", "paid", provider="card-primary", charge_id=first["id"])
    shop.mail("SO-DBL")
    # 4. refunded in the shop, never at the provider
    kept = shop.charge("wallet", "SO-NOREF")
    shop.order("SO-NOREF", "refunded", channel="wallet", provider="wallet", charge_id=kept["id"])
    shop.mail("SO-NOREF", "sent")
    # 5. no confirmation at all; a confirmation the outbox gave up on
    nomail = shop.charge("card-primary", "SO-NOMAIL")
    shop.order("SO-NOMAIL", "paid", provider="card-primary", charge_id=nomail["id"])
    dead = shop.charge("card-secondary", "SO-DEAD")
    shop.order("SO-DEAD", "delivered", provider="card-secondary", charge_id=dead["id"])
    shop.mail("SO-DEAD", "dead")
    shop.mail("SO-DEAD", "sent", kind="shipped")

    expected = {
        ("paid_without_charge", "SO-NOCHG"),
        ("paid_without_charge", "SO-AMT"),
        ("charge_without_order", "SO-GHOST"),
        ("charge_without_order", "SO-STUCK"),
        ("double_capture", "SO-DBL"),
        ("refund_missing_at_provider", "SO-NOREF"),
        ("mail_missing", "SO-NOMAIL"),
        ("mail_missing", "SO-DEAD"),
    }
    result = reconcile(env)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = _lines(result)
    assert {(line.split()[0], line.split()[1].removeprefix("order=")) for line in lines} == expected
    by_order = {line.split()[1].removeprefix("order="): line for line in lines}
    assert "provider=card-primary charge=ch_doesnotexist charged=-" in by_order["SO-NOCHG"]
    assert "no charge ch_doesnotexist at card-primary" in by_order["SO-NOCHG"]
    assert "total=2500 EUR" in by_order["SO-AMT"] and "charged=1999 EUR" in by_order["SO-AMT"]
    assert f"provider=crypto charge={ghost['id']} charged=1999 EUR" in by_order["SO-GHOST"]
    assert "no order SO-GHOST in the shop" in by_order["SO-GHOST"]
    assert f"charge={stuck['id']}" in by_order["SO-STUCK"]
    assert "pending_payment" in by_order["SO-STUCK"]
    assert "provider=card-primary,card-secondary" in by_order["SO-DBL"]
    assert f"charge={first['id']},{second['id']}" in by_order["SO-DBL"]
    assert f"the order keeps card-primary/{first['id']}" in by_order["SO-DBL"]
    assert "1999 EUR of the charge are still captured at wallet" in by_order["SO-NOREF"]
    assert "order:SO-NOMAIL:confirmation" in by_order["SO-NOMAIL"]
    assert "is dead in the outbox" in by_order["SO-DEAD"]
    summary = result.stdout.splitlines()[-1]
    assert summary.startswith(
        "summary: 8 discrepancies (paid_without_charge=2 charge_without_order=2"
        " double_capture=1 refund_missing_at_provider=1 mail_missing=2)"
    ), summary

    json_run = reconcile(env, "--json")
    assert json_run.returncode == 1, json_run.stderr
    report = json.loads(json_run.stdout)
    assert report["ok"] is False and report["exit_code"] == 1
    assert _found(report) == expected
    assert report["summary"]["counts"] == {
        "paid_without_charge": 2,
        "charge_without_order": 2,
        "double_capture": 1,
        "refund_missing_at_provider": 1,
        "mail_missing": 2,
    }
    assert report["summary"]["orders_checked"] == 12
    assert report["summary"]["charges_checked"] == 14
    entries = {(d["kind"], d["order_reference"]): d for d in report["discrepancies"]}
    orphan = entries["charge_without_order", "SO-GHOST"]
    assert orphan["provider"] == "crypto" and orphan["charge_id"] == ghost["id"]
    assert orphan["order_status"] is None
    assert orphan["charges"][0]["amount_minor"] == 1999
    assert orphan["charges"][0]["idempotency_key"] == "charge-SO-GHOST"
    double = entries["double_capture", "SO-DBL"]
    assert [(c["provider"], c["id"]) for c in double["charges"]] == [
        ("card-primary", first["id"]),
        ("card-secondary", second["id"]),
    ]
    refund = entries["refund_missing_at_provider", "SO-NOREF"]
    assert refund["order_status"] == "refunded" and refund["charge_id"] == kept["id"]
    assert refund["charges"][0]["refunded_minor"] == 0

    # --- without a grace, the checkout in flight counts too ------------------------------
    report = json.loads(reconcile(env, "--json", "--settle-seconds", "0").stdout)
    assert _found(report) == expected | {("charge_without_order", "SO-FLIGHT")}
    assert report["summary"]["orders_in_flight"] == 0


def test_reconcile_exits_2_naming_an_unreachable_provider(tmp_path: Path) -> None:
    database = tmp_path / "shop.db"
    migrated = subprocess.run(
        [PYTHON, "-m", "app.db", "migrate"],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{database}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrated.returncode == 0, migrated.stderr
    nowhere = f"http://127.0.0.1:{free_port()}"
    env = _env(
        f"sqlite+aiosqlite:///{database}",
        nowhere,
        PARTNERS_PAYMENT_ROUTES='{"card": ["card-secondary"]}',
    )

    result = reconcile(env, "--timeout", "2")
    assert result.returncode == 2
    assert result.stdout == ""
    assert (
        f"could not check: payment provider card-secondary at {nowhere}/card-secondary/v1/charges"
        " is unreachable" in result.stderr
    ), result.stderr

    result = reconcile(env, "--json", "--timeout", "2")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["exit_code"] == 2
    assert f"{nowhere}/card-secondary/v1/charges is unreachable" in report["error"]


def test_reconcile_exits_2_when_the_database_is_missing(tmp_path: Path, payments_url: str) -> None:
    missing = tmp_path / "no-such.db"
    result = reconcile(_env(f"sqlite+aiosqlite:///{missing}", payments_url))
    assert result.returncode == 2
    assert "could not check: the database file of DATABASE_URL=sqlite:///" in result.stderr
    assert not missing.exists()  # nothing was created by looking
