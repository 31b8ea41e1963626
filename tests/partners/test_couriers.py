"""The courier gateway against the courier sandbox: quotes, customs, labels, tracking."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from itertools import pairwise

import httpx
import pytest
from fastapi import FastAPI, Request
from partners_support import WEBHOOK_SECRET, Sandbox, fast_settings, metric
from prometheus_client import REGISTRY

from app.api.webhooks import verified_json
from app.partners.couriers import (
    CourierUnavailable,
    HttpCourierGateway,
    ShipmentRejected,
    build_courier_gateway,
    tracking_update_from_webhook,
)
from app.partners.interfaces import CustomsItem, Parcel
from app.partners.metrics import COURIER_OPERATIONS, COURIER_OUTCOMES
from app.sandbox.couriers import create_app
from app.sandbox.serving import serving

ADDRESS = {
    "name": "Erika Mustermann",
    "line1": "Hauptstr. 5",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
}
SHIRT = CustomsItem(
    hs_code="6109.10",
    description="cotton t-shirt",
    quantity=2,
    value_minor=3000,
    origin_country="UA",
)
MUG = CustomsItem(
    hs_code="691200", description="ceramic mug", quantity=1, value_minor=1500, origin_country="UA"
)


def parcel(
    country: str = "DE", weight: int = 2500, items: tuple[CustomsItem, ...] = (SHIRT, MUG)
) -> Parcel:
    return Parcel(
        weight_grams=weight,
        destination_country=country,
        postal_code="10115",
        declared_value_minor=sum(i.value_minor for i in items),
        currency="EUR",
        items=items,
    )


@pytest.fixture()
async def gateway(couriers: Sandbox) -> AsyncIterator[HttpCourierGateway]:
    gw = build_courier_gateway(fast_settings(couriers_base_url=couriers.url))
    yield gw
    await gw.aclose()


async def test_quotes_from_both_couriers_cheapest_first(gateway: HttpCourierGateway):
    quotes = await gateway.quote(parcel("DE", weight=2500))
    assert [q.option_id for q in quotes] == [
        "swiftpost:economy",
        "globex:standard",
        "globex:express",
    ]
    economy = quotes[0]
    assert economy.amount_minor == 1200 + 400 * 3  # base + three started kilograms
    assert economy.currency == "EUR"
    assert quotes[-1].estimated_days < economy.estimated_days


async def test_quotes_follow_the_destination_zone(gateway: HttpCourierGateway):
    europe = {q.option_id: q.amount_minor for q in await gateway.quote(parcel("FR", 1000))}
    world = {q.option_id: q.amount_minor for q in await gateway.quote(parcel("US", 1000))}
    domestic = {q.option_id: q.amount_minor for q in await gateway.quote(parcel("UA", 1000))}
    for option, price in europe.items():
        assert domestic[option] < price < world[option]


async def test_heavy_parcels_only_get_the_courier_that_takes_them(gateway: HttpCourierGateway):
    quotes = await gateway.quote(parcel("DE", weight=40_000))
    assert {q.courier for q in quotes} == {"globex"}


async def test_unserved_destination_gets_no_quotes_not_an_error(gateway: HttpCourierGateway):
    assert await gateway.quote(parcel("KP")) == []


async def test_one_courier_down_leaves_the_other_all_down_is_unavailable(
    couriers: Sandbox, gateway: HttpCourierGateway
):
    await couriers.set_faults("swiftpost", outage=True)
    quotes = await gateway.quote(parcel())
    assert {q.courier for q in quotes} == {"globex"}
    await couriers.set_faults("globex", outage=True)
    with pytest.raises(CourierUnavailable):
        await gateway.quote(parcel())


def requests(courier: str, outcome: str, operation: str = "quote") -> float:
    return metric(
        "shop_courier_requests_total", courier=courier, operation=operation, outcome=outcome
    )


async def test_every_courier_request_series_exists_before_the_first_request():
    gw = build_courier_gateway(fast_settings(couriers=["pigeon"]))
    try:
        values = {
            (operation, outcome): REGISTRY.get_sample_value(
                "shop_courier_requests_total",
                {"courier": "pigeon", "operation": operation, "outcome": outcome},
            )
            for operation in COURIER_OPERATIONS
            for outcome in COURIER_OUTCOMES
        }
    finally:
        await gw.aclose()
    assert set(values.values()) == {0.0}


async def test_an_outage_counts_as_errors_of_that_courier_and_the_others_still_quote(
    couriers: Sandbox, gateway: HttpCourierGateway
):
    before = {
        (courier, outcome): requests(courier, outcome)
        for courier in ("swiftpost", "globex")
        for outcome in COURIER_OUTCOMES
    }
    await couriers.set_faults("swiftpost", outage=True)  # 503 to every request
    quotes = await gateway.quote(parcel())
    assert {q.courier for q in quotes} == {"globex"}
    after = {key: requests(*key) for key in before}
    moved = {key: after[key] - before[key] for key in before if after[key] != before[key]}
    # Each of swiftpost's three attempts (the breaker is still closed) is one error.
    assert moved == {("swiftpost", "error"): 3, ("globex", "ok"): 1}


async def test_a_refused_quote_is_the_courier_working_not_an_error(gateway: HttpCourierGateway):
    before = {outcome: requests("globex", outcome) for outcome in ("refused", "error")}
    assert await gateway.quote(parcel("KP")) == []  # 422: no delivery there
    assert requests("globex", "refused") == before["refused"] + 1
    assert requests("globex", "error") == before["error"]


async def test_shipment_and_tracking_requests_are_counted_as_their_operation(
    gateway: HttpCourierGateway,
):
    shipments, tracking = requests("globex", "ok", "shipment"), requests("globex", "ok", "tracking")
    shipment = await gateway.create_shipment(
        option_id="globex:standard",
        parcel=parcel(),
        order_reference=f"ord-{uuid.uuid4().hex[:8]}",
        address=ADDRESS,
    )
    await gateway.tracking(courier="globex", tracking_number=shipment.tracking_number)
    assert requests("globex", "ok", "shipment") == shipments + 1
    assert requests("globex", "ok", "tracking") == tracking + 1


async def test_export_shipment_carries_customs_and_tracks_to_delivered(
    couriers: Sandbox, gateway: HttpCourierGateway
):
    created_before = metric("shop_shipments_total", courier="globex", state="created")
    order = f"ord-{uuid.uuid4().hex[:8]}"
    shipment = await gateway.create_shipment(
        option_id="globex:express", parcel=parcel(), order_reference=order, address=ADDRESS
    )
    assert shipment.courier == "globex"
    assert shipment.tracking_number.startswith("GX")
    assert metric("shop_shipments_total", courier="globex", state="created") == created_before + 1

    stored = couriers.app.state.shipments[shipment.tracking_number]
    assert stored.customs["declared_value_minor"] == 4500
    assert [i["hs_code"] for i in stored.customs["items"]] == ["610910", "691200"]
    async with httpx.AsyncClient() as client:
        label = (await client.get(shipment.label_url)).text
    assert shipment.tracking_number in label and "CN23 4500 EUR" in label

    events = await gateway.tracking(courier="globex", tracking_number=shipment.tracking_number)
    assert [e.status for e in events] == ["label_created"]
    for _ in range(5):
        advanced = await couriers.admin.post(f"/admin/shipments/{shipment.tracking_number}/advance")
        assert advanced.status_code == 200
    events = await gateway.tracking(courier="globex", tracking_number=shipment.tracking_number)
    assert [e.status for e in events] == [
        "label_created",
        "picked_up",
        "in_transit",
        "customs_cleared",
        "out_for_delivery",
        "delivered",
    ]
    assert events[-1].location == "Berlin, DE"
    assert all(a.occurred_at <= b.occurred_at for a, b in pairwise(events))
    again = await couriers.admin.post(f"/admin/shipments/{shipment.tracking_number}/advance")
    assert again.status_code == 409


async def test_domestic_shipment_needs_no_customs(gateway: HttpCourierGateway):
    shipment = await gateway.create_shipment(
        option_id="swiftpost:economy",
        parcel=parcel("UA", items=()),
        order_reference="ord-domestic",
        address={**ADDRESS, "city": "Lviv", "country": "UA", "postal_code": "79000"},
    )
    assert shipment.tracking_number.startswith("SP")


async def test_a_retried_shipment_for_one_order_buys_one_label(
    couriers: Sandbox, gateway: HttpCourierGateway
):
    first, second = await asyncio.gather(
        *(
            gateway.create_shipment(
                option_id="swiftpost:economy",
                parcel=parcel(),
                order_reference="ord-once",
                address=ADDRESS,
            )
            for _ in range(2)
        )
    )
    assert first.tracking_number == second.tracking_number
    assert len(couriers.app.state.shipments) == 1


@pytest.mark.parametrize(
    ("the_parcel", "problem"),
    [
        (parcel("US", items=()), "customs declaration is required"),
        (
            parcel(items=(CustomsItem("12AB", "widget", 1, 100, "UA"),)),
            "HS code has 6 to 10 digits",
        ),
        (
            Parcel(2500, "DE", "10115", declared_value_minor=9999, currency="EUR", items=(SHIRT,)),
            "not the sum of the item values",
        ),
        (
            Parcel(2500, "DE", "10115", declared_value_minor=3000, currency="euro", items=(SHIRT,)),
            "currency",
        ),
        (parcel(items=(CustomsItem("610910", "shirt", 0, 100, "UA"),)), "quantity"),
        (parcel(items=(CustomsItem("610910", "shirt", 1, 100, "Ukraine"),)), "origin_country"),
    ],
)
async def test_bad_customs_declarations_are_refused(
    couriers: Sandbox, gateway: HttpCourierGateway, the_parcel: Parcel, problem: str
):
    failed_before = metric("shop_shipments_total", courier="globex", state="failed")
    with pytest.raises(ShipmentRejected) as refused:
        await gateway.create_shipment(
            option_id="globex:standard",
            parcel=the_parcel,
            order_reference=f"ord-{uuid.uuid4().hex[:6]}",
            address={**ADDRESS, "country": the_parcel.destination_country},
        )
    assert problem in str(refused.value) + " ".join(refused.value.problems)
    assert couriers.app.state.shipments == {}
    assert metric("shop_shipments_total", courier="globex", state="failed") == failed_before + 1


async def test_unknown_option_is_refused_without_a_call(gateway: HttpCourierGateway):
    with pytest.raises(ShipmentRejected, match="unknown shipping option"):
        await gateway.create_shipment(
            option_id="pigeon:fast", parcel=parcel(), order_reference="o", address=ADDRESS
        )


async def test_tracking_events_are_pushed_signed_and_parse_on_the_shop_side(couriers: Sandbox):
    received: list[dict] = []
    shop = FastAPI()

    @shop.post("/webhooks/couriers")
    async def hook(request: Request) -> dict[str, str]:
        received.append(await verified_json(request, WEBHOOK_SECRET))
        return {"status": "ok"}

    async with serving(shop) as shop_url:
        await couriers.admin.put("/admin/webhooks", json={"url": f"{shop_url}/webhooks/couriers"})
        gw = build_courier_gateway(fast_settings(couriers_base_url=couriers.url))
        try:
            shipment = await gw.create_shipment(
                option_id="swiftpost:economy",
                parcel=parcel(),
                order_reference="ord-push",
                address=ADDRESS,
            )
        finally:
            await gw.aclose()
        await couriers.admin.post(f"/admin/shipments/{shipment.tracking_number}/advance")
        await couriers.app.state.webhooks.drain()
    picked_up_before = metric("shop_shipments_total", courier="swiftpost", state="picked_up")
    updates = [tracking_update_from_webhook(event) for event in received]
    assert [u[3].status for u in updates] == ["label_created", "picked_up"]
    assert {(u[0], u[1], u[2]) for u in updates} == {
        ("swiftpost", shipment.tracking_number, "ord-push")
    }
    assert metric("shop_shipments_total", courier="swiftpost", state="picked_up") == (
        picked_up_before + 1
    )


async def test_tracking_advances_by_itself_over_time():
    app = create_app(tracking_step_seconds=0.05)
    async with serving(app) as url:
        gw = build_courier_gateway(fast_settings(couriers_base_url=url))
        try:
            shipment = await gw.create_shipment(
                option_id="globex:express", parcel=parcel(), order_reference="o", address=ADDRESS
            )
            statuses: list[str] = []
            for _ in range(200):  # bounded wait: up to ~20 s on a very slow machine
                events = await gw.tracking(
                    courier="globex", tracking_number=shipment.tracking_number
                )
                statuses = [e.status for e in events]
                if statuses[-1] == "delivered":
                    break
                await asyncio.sleep(0.1)
        finally:
            await gw.aclose()
    assert statuses[-1] == "delivered"
    assert "customs_cleared" in statuses
