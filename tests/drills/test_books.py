"""The drills' books (drills/integrity.py): what the customers were told against what the
database holds. A pending answer (202, the payment's answer lost) is a promise too."""

from __future__ import annotations

from pathlib import Path

from drills import integrity
from loadtests.ledger import Ledger

KEY_A = "8f7c2a4e-1d55-4b0e-9a8e-0c6f1f1e2a01"
KEY_B = "8f7c2a4e-1d55-4b0e-9a8e-0c6f1f1e2a02"


def _order(order_id: int, status: str, mail: str = "sent") -> list[dict[str, str]]:
    return [{"id": str(order_id), "status": status, "mail": mail}]


def test_books_that_match_the_answers_have_no_discrepancy() -> None:
    orders = {KEY_A: _order(1, "paid"), KEY_B: _order(2, "paid", mail="pending")}
    assert integrity.discrepancies({KEY_A: 1}, {KEY_B: 2}, orders) == []


def test_a_confirmed_order_missing_or_twice_is_a_discrepancy() -> None:
    twice = {KEY_A: _order(1, "paid") + _order(3, "paid")}
    assert integrity.discrepancies({KEY_A: 1}, {}, {}) == [f"confirmed order 1 ({KEY_A}): 0 rows"]
    assert integrity.discrepancies({KEY_A: 1}, {}, twice) == [
        f"confirmed order 1 ({KEY_A}): 2 rows"
    ]


def test_an_order_told_pending_must_have_been_settled() -> None:
    still_pending = {KEY_B: _order(2, "pending_payment", mail="")}
    assert integrity.discrepancies({}, {KEY_B: 2}, still_pending) == [
        "pending order 2 was never settled"
    ]


def test_a_pending_order_settled_paid_needs_its_confirmation_mail() -> None:
    paid_unmailed = {KEY_B: _order(2, "paid", mail="")}
    assert integrity.discrepancies({}, {KEY_B: 2}, paid_unmailed) == [
        "pending order 2: confirmation mail missing"
    ]


def test_a_pending_order_settled_as_not_charged_is_no_discrepancy() -> None:
    # Nothing was captured; whether a charge exists anyway is the reconcile command's check.
    assert integrity.discrepancies({}, {KEY_B: 2}, {KEY_B: _order(2, "cancelled", "")}) == []


def test_a_confirmed_order_that_lost_its_money_is_a_discrepancy() -> None:
    assert integrity.discrepancies({KEY_A: 1}, {}, {KEY_A: _order(1, "cancelled")}) == [
        "confirmed order 1 is cancelled"
    ]


def test_the_ledger_keeps_pending_answers_apart_from_confirmed_ones(tmp_path: Path) -> None:
    book = Ledger(tmp_path)
    book.checkout_attempted(KEY_A)
    book.checkout_confirmed(KEY_A, 1)
    book.checkout_attempted(KEY_B)
    book.checkout_pending(KEY_B, 2)
    attempted, confirmed, pending = integrity.answers(tmp_path)
    assert (attempted, confirmed, pending) == ([KEY_A, KEY_B], {KEY_A: 1}, {KEY_B: 2})
