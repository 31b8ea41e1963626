"""The ops surface: health, readiness, request ids, JSON logs, metrics, OpenAPI, graceful drain."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.app.client import ShopClient
from tests.conftest import ShopServer, start_payments_sandbox, stop_process


def families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(text: str, name: str, **labels: str) -> float:
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name and set(labels.items()) <= set(s.labels.items())
    )


async def test_health_and_readiness(client: ShopClient) -> None:
    assert (await client.http.get("/healthz")).json() == {"status": "ok"}
    ready = await client.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_request_id_is_echoed_or_generated_and_logged(client: ShopClient) -> None:
    echoed = await client.http.get(
        "/api/products/SKU-000003", headers={"X-Request-ID": "trace-abc-123"}
    )
    assert echoed.headers["X-Request-ID"] == "trace-abc-123"
    generated = await client.http.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["X-Request-ID"] != "bad id with spaces"
    assert len(generated.headers["X-Request-ID"]) == 32
    missing = await client.http.get("/api/products/NOPE-1")
    assert missing.json()["error"]["request_id"] == missing.headers["X-Request-ID"]
    lines = [json.loads(line) for line in client.shop.log().splitlines() if line.startswith("{")]
    access = [
        r
        for r in lines
        if r.get("logger") == "shop.access" and r.get("request_id") == "trace-abc-123"
    ]
    assert access and access[0]["route"] == "/api/products/{sku}" and access[0]["status"] == 200


async def test_openapi_publishes_the_contract_routes(client: ShopClient) -> None:
    paths = (await client.http.get("/openapi.json")).json()["paths"]
    for path in (
        "/api/products",
        "/api/products/{sku}",
        "/api/auth/login/mfa",
        "/api/cart/items/{sku}",
        "/api/checkout",
        "/api/orders/{order_id}/cancel",
        "/api/admin/orders/{order_id}/transition",
    ):
        assert path in paths, path


async def test_unknown_route_is_a_json_404_without_a_new_label_per_path(client: ShopClient) -> None:
    response = await client.http.get("/no/such/page/42")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    text = (await client.http.get("/metrics")).text
    assert value(text, "shop_http_requests_total", route="<unmatched>", status="404") >= 1
    assert "/no/such/page/42" not in text


async def test_metrics_follow_the_contract(client: ShopClient) -> None:
    text = (await client.http.get("/metrics")).text
    found = families(text)
    expected_types = {
        "shop_http_requests": "counter",
        "shop_http_request_duration_seconds": "histogram",
        "shop_http_requests_in_progress": "gauge",
        "shop_orders": "counter",
        "shop_revenue_minor_units": "counter",
        "shop_checkout_failures": "counter",
        "shop_cache_requests": "counter",
        "shop_db_pool_connections": "gauge",
        "shop_bestsellers_out_of_stock": "gauge",
        "shop_build_info": "gauge",
    }
    for name, kind in expected_types.items():
        assert name in found, name
        assert found[name].type == kind, name
    # alert-relevant series exist (at zero if nothing happened yet)
    names = {(s.name, tuple(sorted(s.labels.items()))) for f in found.values() for s in f.samples}
    reasons = (
        "out_of_stock",
        "payment_declined",
        "payment_error",
        "fraud_blocked",
        "fraud_challenged",
        "invalid",
    )
    for reason in reasons:
        assert ("shop_checkout_failures_total", (("reason", reason),)) in names
    for outcome in ("placed", "paid", "cancelled", "refunded", "payment_failed"):
        assert ("shop_orders_total", (("outcome", outcome),)) in names
    assert (
        value(text, "shop_http_requests_total", route="/api/checkout", method="POST", status="500")
        == 0
    )
    buckets = sorted(
        float(s.labels["le"])
        for s in found["shop_http_request_duration_seconds"].samples
        if s.name.endswith("_bucket")
        and s.labels.get("route") == "/healthz"
        and s.labels["le"] != "+Inf"
    )
    assert buckets == [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0]
    assert value(text, "shop_build_info") == 1
    assert value(text, "shop_db_pool_connections", state="max") > 0
    assert 0 <= value(text, "shop_bestsellers_out_of_stock") <= 20


async def test_every_operation_exports_its_5xx_series_before_any_failure(
    client: ShopClient,
) -> None:
    """The availability SLO divides each route's 5xx by its requests: a route that has
    never failed must still export a 0, or its ratio is absent rather than 0."""
    operations = {
        (path, method.upper())
        for path, item in (await client.http.get("/openapi.json")).json()["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    text = (await client.http.get("/metrics")).text
    exported = {
        (s.labels["route"], s.labels["method"])
        for s in families(text)["shop_http_requests"].samples
        if s.name == "shop_http_requests_total" and s.labels["status"] == "500"
    }
    assert len(operations) > 30
    assert sorted(operations - exported) == []


async def test_counts_are_summed_over_all_workers(client: ShopClient) -> None:
    requests = 60
    before = value(
        (await client.http.get("/metrics")).text, "shop_http_requests_total", route="/healthz"
    )
    # fresh connections, so the kernel spreads them over both workers
    for _ in range(requests):
        async with httpx.AsyncClient(base_url=client.shop.url) as fresh:
            assert (await fresh.get("/healthz")).status_code == 200
    after = value(
        (await client.http.get("/metrics")).text, "shop_http_requests_total", route="/healthz"
    )
    assert after - before == requests


async def test_sigterm_drains_the_request_in_flight(
    shop_factory: Callable[..., ShopServer], tmp_path_factory: pytest.TempPathFactory
) -> None:
    slow_payments = start_payments_sandbox()
    try:
        async with httpx.AsyncClient() as knobs:
            slowed = await knobs.put(
                f"{slow_payments.url}/admin/faults/card-primary", json={"latency_ms": 2500}
            )
            slowed.raise_for_status()
        db = tmp_path_factory.mktemp("drain") / "shop.db"
        shop = shop_factory(
            f"sqlite+aiosqlite:///{db}",
            payments_url=slow_payments.url,
            workers=1,
            extra_env={"PARTNERS_PAYMENT_TIMEOUT_SECONDS": "10", "GRACEFUL_TIMEOUT": "20"},
        )
        async with httpx.AsyncClient(base_url=shop.url, timeout=30) as http:
            client = ShopClient(http, shop)
            admin = await client.admin()
            sku = await client.create_product(admin, stock={"WH-KYIV": 3})
            token = await client.customer()
            await client.add_to_cart(token, sku)
            in_flight = asyncio.create_task(client.checkout(token))
            while True:  # wait until the checkout is inside the app (its payment call is slow)
                metrics_text = (await http.get("/metrics")).text
                if value(metrics_text, "shop_http_requests_in_progress") >= 2:
                    break
                await asyncio.sleep(0.05)
            shop.process.send_signal(signal.SIGTERM)
            response = await in_flight
            assert response.status_code == 201, response.text
            assert response.json()["status"] == "paid"
        assert await asyncio.to_thread(shop.process.wait, 30) == 0
        with pytest.raises(httpx.TransportError):
            async with httpx.AsyncClient() as late:
                await late.get(f"{shop.url}/healthz", timeout=2)
    finally:
        stop_process(slow_payments.process)
