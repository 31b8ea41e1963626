"""A courier's rate limit (429 + Retry-After): honoured, not retried, not an outage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from partners_support import Sandbox, fast_settings, metric

from app.partners.couriers import HttpCourierGateway, build_courier_gateway
from app.partners.couriers.gateway import retry_after_seconds
from app.partners.interfaces import Parcel

PARCEL = Parcel(
    weight_grams=1200,
    destination_country="DE",
    postal_code="10115",
    declared_value_minor=1000,
    currency="EUR",
)


@pytest.fixture()
async def gateway(couriers: Sandbox) -> AsyncIterator[HttpCourierGateway]:
    # A breaker that would open after two failures: 429s must not count as failures.
    gw = build_courier_gateway(
        fast_settings(
            couriers_base_url=couriers.url, breaker_failure_threshold=2, courier_attempts=3
        )
    )
    yield gw
    await gw.aclose()


def globex_calls() -> float:
    return sum(
        metric("sandbox_requests_total", service="globex", outcome=outcome)
        for outcome in ("ok", "rejected", "error", "timeout", "outage")
    )


async def test_a_courier_429_is_honoured_not_retried_and_does_not_open_the_circuit(
    couriers: Sandbox, gateway: HttpCourierGateway
):
    await couriers.set_faults("globex", rate_limit=100, retry_after_seconds=2)
    before = globex_calls()
    refused = metric("shop_courier_rate_limited_total", courier="globex", outcome="refused")
    skipped = metric("shop_courier_rate_limited_total", courier="globex", outcome="skipped")
    limited_at = time.monotonic()

    for _ in range(4):  # more than the breaker threshold
        quotes = await gateway.quote(PARCEL)
        assert {q.courier for q in quotes} == {"swiftpost"}  # globex left out, no error
    # asked once (no retry of the 429), then left alone until Retry-After
    assert globex_calls() - before == 1
    assert metric("shop_courier_rate_limited_total", courier="globex", outcome="refused") == (
        refused + 1
    )
    assert metric("shop_courier_rate_limited_total", courier="globex", outcome="skipped") == (
        skipped + 3
    )

    await couriers.set_faults("globex", rate_limit=0)
    await asyncio.sleep(max(0.0, 2.1 - (time.monotonic() - limited_at)))
    quotes = await gateway.quote(PARCEL)
    # the circuit stayed closed: globex is asked again, and answers
    assert "globex" in {q.courier for q in quotes}
    assert globex_calls() - before == 2


def test_retry_after_is_read_as_seconds_or_a_date_and_bounded():
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("7") == 7
    assert retry_after_seconds(None) == 1
    assert retry_after_seconds("soon") == 1
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert retry_after_seconds("86400") == 300
    assert retry_after_seconds("-5") == 0
