"""The risk engine: which requests are allowed, challenged and blocked, and why."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from partners_support import metric

from app.partners.fraud import (
    InMemoryRiskHistory,
    RiskDecision,
    RiskEngine,
    RiskRequest,
)
from app.partners.settings import FraudSettings

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SETTINGS = FraudSettings()  # the shipped defaults are what is tested


def request(**changes: object) -> RiskRequest:
    base = RiskRequest(
        customer_reference="cust-1",
        account_created_at=NOW - timedelta(days=400),
        amount_minor=4_000,
        currency="EUR",
        payment_token="tok_visa_cust1",
        ip_address="198.51.100.7",
        billing_country="DE",
        shipping_country="DE",
        order_reference="ord-1",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture()
def history() -> InMemoryRiskHistory:
    return InMemoryRiskHistory()


@pytest.fixture()
def engine(history: InMemoryRiskHistory) -> RiskEngine:
    return RiskEngine(SETTINGS, history)


async def seed_orders(engine: RiskEngine, amounts: list[int], *, days_ago: int = 30) -> None:
    """Earlier, unremarkable orders of cust-1, long enough ago to be outside every window."""
    for n, amount in enumerate(amounts):
        at = NOW - timedelta(days=days_ago, hours=n)
        await engine.assess(request(amount_minor=amount, order_reference=f"old-{n}"), now=at)


async def test_an_ordinary_order_is_allowed_with_no_reasons(engine: RiskEngine):
    result = await engine.assess(request(), now=NOW)
    assert result.decision == RiskDecision.ALLOW
    assert result.score == 0 and result.reasons == ()


async def test_country_mismatch_alone_is_allowed_but_noted(engine: RiskEngine):
    result = await engine.assess(request(billing_country="DE", shipping_country="FR"), now=NOW)
    assert result.decision == RiskDecision.ALLOW
    assert result.reason_codes == ["country_mismatch"]
    assert "FR" in result.reasons[0].detail


async def test_new_account_with_a_large_order_is_challenged(engine: RiskEngine):
    result = await engine.assess(
        request(account_created_at=NOW - timedelta(days=1), amount_minor=80_000), now=NOW
    )
    assert result.decision == RiskDecision.CHALLENGE
    assert result.reason_codes == ["new_account_large_order"]


@pytest.mark.parametrize(
    ("age", "amount", "fires"),
    [
        (timedelta(days=1), 49_999, False),  # new but small
        (timedelta(days=1), 50_000, True),  # threshold is inclusive
        (timedelta(days=7), 80_000, False),  # old enough
        (timedelta(days=6, hours=23), 80_000, True),
    ],
)
async def test_new_account_rule_boundaries(
    engine: RiskEngine, age: timedelta, amount: int, fires: bool
):
    result = await engine.assess(
        request(account_created_at=NOW - age, amount_minor=amount), now=NOW
    )
    assert ("new_account_large_order" in result.reason_codes) is fires


@pytest.mark.parametrize(("amount", "decision"), [(20_000, "allow"), (20_001, "challenge")])
async def test_amount_far_above_the_usual_is_challenged(
    engine: RiskEngine, amount: int, decision: str
):
    await seed_orders(engine, [3_000, 4_000, 5_000])  # median 4000; factor 5 -> 20000 is usual
    result = await engine.assess(request(amount_minor=amount), now=NOW)
    assert result.decision == RiskDecision(decision)
    assert result.reason_codes == ([] if decision == "allow" else ["amount_unusual"])


async def test_amount_rule_needs_enough_history_and_the_same_currency(engine: RiskEngine):
    await seed_orders(engine, [3_000, 4_000])  # two orders: not enough to know "usual"
    assert (await engine.assess(request(amount_minor=90_000), now=NOW)).reasons == ()
    await seed_orders(engine, [3_000], days_ago=40)
    in_usd = await engine.assess(request(amount_minor=90_000, currency="USD"), now=NOW)
    assert "amount_unusual" not in in_usd.reason_codes


async def test_velocity_per_account_challenges_the_sixth_attempt_in_an_hour(engine: RiskEngine):
    decisions = []
    for n in range(6):
        result = await engine.assess(
            request(
                order_reference=f"ord-{n}",
                payment_token=f"tok_{n}",
                ip_address=f"203.0.113.{n}",
            ),
            now=NOW + timedelta(minutes=n),
        )
        decisions.append(result.decision)
    assert decisions == [RiskDecision.ALLOW] * 5 + [RiskDecision.CHALLENGE]
    assert result.reason_codes == ["velocity_account"]


async def test_velocity_window_forgets_old_attempts(engine: RiskEngine):
    for n in range(5):
        await engine.assess(request(payment_token=f"tok_{n}", ip_address=f"203.0.113.{n}"),
                            now=NOW - timedelta(minutes=90))  # fmt: skip
    assert (await engine.assess(request(), now=NOW)).decision == RiskDecision.ALLOW


async def test_card_testing_one_token_many_accounts_one_ip_is_blocked(engine: RiskEngine):
    """Many accounts trying one card from one address: token and IP velocity both fire."""
    result = None
    for n in range(9):
        result = await engine.assess(
            request(
                customer_reference=f"cust-{n}",
                payment_token="tok_stolen",
                amount_minor=500,
                order_reference=f"ord-{n}",
            ),
            now=NOW + timedelta(seconds=n),
        )
    assert result is not None
    assert result.decision == RiskDecision.BLOCK
    assert set(result.reason_codes) == {"velocity_payment_token", "velocity_ip"}
    assert result.score == 2 * SETTINGS.velocity_points


async def test_one_attempt_assessed_again_after_a_step_up_counts_once(engine: RiskEngine):
    """A challenged checkout sent again with the customer's code is the same attempt."""
    limit = SETTINGS.max_orders_per_payment_token
    for n in range(limit - 1):
        await engine.assess(request(order_reference=f"done-{n}"), now=NOW + timedelta(seconds=n))
    first = await engine.assess(request(order_reference="again"), now=NOW + timedelta(minutes=1))
    again = await engine.assess(request(order_reference="again"), now=NOW + timedelta(minutes=2))
    assert "velocity_payment_token" not in first.reason_codes
    assert "velocity_payment_token" not in again.reason_codes
    other = await engine.assess(request(order_reference="next"), now=NOW + timedelta(minutes=3))
    assert "velocity_payment_token" in other.reason_codes


async def test_an_attempt_withdrawn_before_any_charge_no_longer_counts(engine: RiskEngine):
    """The shop failed the attempt itself (its database, say): it tested no card."""
    limit = SETTINGS.max_orders_per_payment_token
    for n in range(limit):
        await engine.assess(request(order_reference=f"try-{n}"), now=NOW + timedelta(seconds=n))
    await engine.withdraw(f"try-{limit - 1}")
    after = await engine.assess(request(order_reference="next"), now=NOW + timedelta(minutes=1))
    assert "velocity_payment_token" not in after.reason_codes
    again = await engine.assess(request(order_reference="then"), now=NOW + timedelta(minutes=2))
    assert "velocity_payment_token" in again.reason_codes  # the others still count


async def test_a_withdrawn_amount_is_not_the_customers_usual(engine: RiskEngine):
    await seed_orders(engine, [3_000, 3_000, 3_000])
    for n in range(3):
        big = request(amount_minor=90_000, order_reference=f"big-{n}")
        await engine.assess(big, now=NOW - timedelta(days=3, hours=n))
        await engine.withdraw(f"big-{n}")
    result = await engine.assess(request(amount_minor=90_000, order_reference="b"), now=NOW)
    assert "amount_unusual" in result.reason_codes


async def test_new_account_large_order_to_another_country_at_speed_is_blocked(engine: RiskEngine):
    new = NOW - timedelta(hours=2)
    for n in range(3):
        await engine.assess(
            request(customer_reference="fresh", account_created_at=new, payment_token="tok_f",
                    order_reference=f"f-{n}", ip_address=f"192.0.2.{n}"),
            now=NOW - timedelta(minutes=10 - n),
        )  # fmt: skip
    result = await engine.assess(
        request(
            customer_reference="fresh",
            account_created_at=new,
            payment_token="tok_f",
            amount_minor=120_000,
            billing_country="UA",
            shipping_country="US",
        ),
        now=NOW,
    )
    assert result.decision == RiskDecision.BLOCK
    assert set(result.reason_codes) == {
        "velocity_payment_token",
        "amount_unusual",  # 30x the three small orders before it
        "country_mismatch",
        "new_account_large_order",
    }
    assert result.score >= SETTINGS.block_score


async def test_thresholds_come_from_config(history: InMemoryRiskHistory):
    strict = RiskEngine(FraudSettings(challenge_score=20, block_score=30), history)
    result = await strict.assess(request(billing_country="DE", shipping_country="PL"), now=NOW)
    assert result.decision == RiskDecision.CHALLENGE
    with pytest.raises(ValueError, match="below block_score"):
        RiskEngine(FraudSettings(challenge_score=80, block_score=80), history)


async def test_every_decision_is_recorded_with_reasons_and_counted(
    engine: RiskEngine, history: InMemoryRiskHistory
):
    before = {d: metric("shop_fraud_decisions_total", decision=d.value) for d in RiskDecision}
    await engine.assess(request(), now=NOW)
    await engine.assess(
        request(account_created_at=NOW, amount_minor=60_000, order_reference="x"), now=NOW
    )
    assert [r.decision for r in history.records] == [RiskDecision.ALLOW, RiskDecision.CHALLENGE]
    assert history.records[1].reasons[0].rule == "new_account_large_order"
    assert "tok_visa_cust1" not in repr(history.records)  # only a fingerprint is kept
    assert metric("shop_fraud_decisions_total", decision="allow") == before[RiskDecision.ALLOW] + 1
    assert metric("shop_fraud_decisions_total", decision="challenge") == (
        before[RiskDecision.CHALLENGE] + 1
    )
    assert metric("shop_fraud_decisions_total", decision="block") == before[RiskDecision.BLOCK]
