"""The `capture_timeout_rate` knob: the charge is booked, then its answer is lost.

Run as `python -m app.sandbox` runs it (AllSandboxes, one fault board, the admin
app beside), turned with the knobs CLI and the admin API.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from partners_support import metric

from app.sandbox import knobs
from app.sandbox.__main__ import AllSandboxes
from app.sandbox.settings import SandboxSettings

CHARGE = {
    "amount_minor": 1000,
    "currency": "EUR",
    "token": "tok_visa",
    "order_reference": "ord-capture",
    "customer_reference": "c",
}


@dataclass
class Lab:
    urls: dict[str, str]
    admin: httpx.AsyncClient


@pytest.fixture()
async def lab() -> AsyncIterator[Lab]:
    settings = SandboxSettings(
        host="127.0.0.1",
        payments_port=0,
        couriers_port=0,
        smtp_port=0,
        admin_port=0,
        tracking_step_seconds=0,
    )
    sandboxes = AllSandboxes(settings)
    urls = await sandboxes.start()
    try:
        async with httpx.AsyncClient(base_url=urls["admin"]) as admin:
            yield Lab(urls, admin)
    finally:
        await sandboxes.stop()


async def test_knobs_cli_sets_it_it_is_exported_and_it_books_then_loses_the_answer(
    lab: Lab, capsys: pytest.CaptureFixture[str]
):
    # The CLI is synchronous: run it off the loop that serves the sandboxes.
    code = await asyncio.to_thread(
        knobs.main,
        ["--admin", lab.urls["admin"], "set", "card-primary", "capture_timeout_rate=100"],
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["capture_timeout_rate"] == 100
    await lab.admin.put("/admin/faults/card-primary", json={"timeout_ms": 200})
    assert (
        metric("sandbox_fault_setting", service="card-primary", knob="capture_timeout_rate") == 100
    )

    timeouts_before = metric("sandbox_requests_total", service="card-primary", outcome="timeout")
    async with httpx.AsyncClient(base_url=lab.urls["payments"], timeout=5) as client:
        for _ in range(2):  # the first books it, the replay is lost the same way
            lost = await client.post(
                "/card-primary/v1/charges", json=CHARGE, headers={"Idempotency-Key": "cap-1"}
            )
            assert lost.status_code == 504
        held = await client.get("/card-primary/v1/charges", params={"idempotency_key": "cap-1"})
    [charge] = held.json()["items"]
    assert charge["status"] == "succeeded" and charge["idempotency_key"] == "cap-1"
    assert metric("sandbox_requests_total", service="card-primary", outcome="timeout") == (
        timeouts_before + 2
    )

    assert await asyncio.to_thread(knobs.main, ["--admin", lab.urls["admin"], "reset"]) == 0
    assert metric("sandbox_fault_setting", service="card-primary", knob="capture_timeout_rate") == 0


async def test_it_is_a_payment_knob_only(lab: Lab):
    refused = await lab.admin.put("/admin/faults/globex", json={"capture_timeout_rate": 50})
    assert refused.status_code == 422
    assert "capture_timeout_rate" in refused.json()["error"]["message"]
    everywhere = await lab.admin.put("/admin/faults", json={"capture_timeout_rate": 25})
    assert everywhere.status_code == 200
    settings = everywhere.json()
    assert settings["card-secondary"]["capture_timeout_rate"] == 25
    assert settings["swiftpost"]["capture_timeout_rate"] == 0
    assert settings["smtp"]["capture_timeout_rate"] == 0
