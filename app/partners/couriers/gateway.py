"""CourierGateway over HTTP: quotes from every courier, shipments with customs, tracking.

Quotes are asked of all couriers at once; a courier that fails is left out
(and only when every courier failed does `quote` raise CourierUnavailable).
A shipment is created once per order: the order reference is the
idempotency key, so a retried "packed" transition never buys two labels.
Export parcels carry a customs declaration built from the parcel's items.
Every request keeps to the caller's deadline (app/partners/deadline.py).
A courier that answers 429 is not asked again (by this process) before its Retry-After
(seconds or an HTTP date; 1 s when absent, at most 5 minutes); meanwhile it is left
out of quotes and counted in `shop_courier_rate_limited_total` (the 429 answers, and
the calls skipped for it); a rate limit is neither retried nor counted by the breaker.
Every HTTP request to a courier, each retry too, is counted in
`shop_courier_requests_total{courier,operation,outcome}` (operations and outcomes:
app/partners/metrics.py); calls an open circuit or a Retry-After kept back are not requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from prometheus_client import Counter

from app.partners import deadline, metrics
from app.partners.interfaces import Parcel, Shipment, ShippingQuote, TrackingEvent
from app.partners.resilience import (
    DEADLINE,
    CircuitOpen,
    ProviderFailure,
    ProviderRateLimited,
    ResilientCaller,
    request_timeout,
)
from app.partners.settings import PartnersSettings, tls_verification

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER_SECONDS = 1.0
MAX_RETRY_AFTER_SECONDS = 300.0

COURIER_RATE_LIMITED = Counter(
    "shop_courier_rate_limited_total",
    "Courier calls refused by the courier's rate limit (429), or skipped until its Retry-After.",
    ["courier", "outcome"],  # outcome: refused (the courier answered 429) or skipped
)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float:
    """Seconds a Retry-After header asks to wait (delta-seconds or HTTP-date), bounded."""
    seconds = DEFAULT_RETRY_AFTER_SECONDS
    if value:
        try:
            seconds = float(value.strip())
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
                seconds = (when - (now or datetime.now(UTC))).total_seconds()
            except (TypeError, ValueError):
                seconds = DEFAULT_RETRY_AFTER_SECONDS
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class CourierUnavailable(Exception):
    """No courier answered (outage, timeouts, open circuits)."""


class ShipmentRejected(Exception):
    """The courier refused the shipment as asked (bad address, customs, option)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def _problems(response: httpx.Response) -> tuple[str, list[str]]:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}", []
    problems = [
        p if isinstance(p, str) else f"{p.get('field')}: {p.get('problem')}"
        for p in error.get("problems", [])
    ]
    return str(error.get("message", response.status_code)), problems


def tracking_event_from(data: dict[str, Any]) -> TrackingEvent:
    return TrackingEvent(
        status=str(data["status"]),
        occurred_at=datetime.fromisoformat(data["occurred_at"]),
        location=str(data.get("location", "")),
        description=str(data.get("description", "")),
    )


def tracking_update_from_webhook(event: dict[str, Any]) -> tuple[str, str, str, TrackingEvent]:
    """(courier, tracking number, order reference, event) of a verified `tracking.updated`."""
    if event.get("type") != "tracking.updated":
        raise ValueError(f"not a tracking update: {event.get('type')!r}")
    data = event["data"]
    update = tracking_event_from(data["event"])
    metrics.SHIPMENTS.labels(courier=data["courier"], state=update.status).inc()
    return data["courier"], data["tracking_number"], data["order_reference"], update


class HttpCourierGateway:
    def __init__(
        self,
        *,
        base_url: str,
        couriers: list[str],
        client: httpx.AsyncClient,
        caller: ResilientCaller,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._couriers = couriers
        self._client = client
        self._caller = caller
        self._not_before: dict[str, float] = {}  # courier -> monotonic time it may be asked
        metrics.declare_shipment_series(couriers)
        metrics.declare_courier_request_series(couriers)
        for courier in couriers:
            for outcome in ("refused", "skipped"):
                COURIER_RATE_LIMITED.labels(courier=courier, outcome=outcome)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _send(
        self, courier: str, operation: str, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        """One request, counted by how it ended: a failure by its kind (error, timeout,
        deadline, rate_limited), an answer as ok, or as refused when it is a 4xx."""
        try:
            response = await self._request(courier, method, path, **kwargs)
        except ProviderFailure as failure:
            self._count(courier, operation, failure.kind)
            raise
        self._count(courier, operation, "ok" if response.status_code < 400 else "refused")
        return response

    @staticmethod
    def _count(courier: str, operation: str, outcome: str) -> None:
        if outcome not in metrics.COURIER_OUTCOMES:  # a failure kind without its own series
            outcome = "error"
        metrics.COURIER_REQUESTS.labels(courier=courier, operation=operation, outcome=outcome).inc()

    async def _request(self, courier: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The HTTP exchange; 5xx, timeouts and network errors raise ProviderFailure
        (retried), 429 ProviderRateLimited (not retried; the courier is left alone until
        Retry-After).

        Its timeouts are cut to what the deadline leaves (app/partners/deadline.py).
        """
        url = f"{self._base_url}/{courier}{path}"
        try:
            async with deadline.hard_stop():
                response = await self._client.request(
                    method, url, timeout=request_timeout(self._client.timeout), **kwargs
                )
        except (httpx.TimeoutException, TimeoutError) as exc:
            kind = DEADLINE if deadline.spent() else "timeout"
            raise ProviderFailure(courier, kind, f"no answer in time ({exc!r})") from exc
        except httpx.TransportError as exc:
            raise ProviderFailure(courier, "error", f"unreachable ({exc!r})") from exc
        if response.status_code == 429:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            self._not_before[courier] = max(
                self._not_before.get(courier, 0.0), time.monotonic() + wait
            )
            COURIER_RATE_LIMITED.labels(courier=courier, outcome="refused").inc()
            raise ProviderRateLimited(courier, wait, f"rate limited (429), retry after {wait:g}s")
        if response.status_code >= 500:
            kind = "timeout" if response.status_code == 504 else "error"
            raise ProviderFailure(courier, kind, f"HTTP {response.status_code}")
        return response

    async def _call(
        self, courier: str, operation: str, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        wait = self._not_before.get(courier, 0.0) - time.monotonic()
        if wait > 0:  # the courier asked us to come back later: it is not called
            COURIER_RATE_LIMITED.labels(courier=courier, outcome="skipped").inc()
            raise ProviderRateLimited(courier, wait, f"rate limited, {wait:.3f}s left")
        return await self._caller.call(
            courier, lambda: self._send(courier, operation, method, path, **kwargs)
        )

    # --- quotes -------------------------------------------------------------

    async def _quote_one(self, courier: str, parcel: Parcel) -> list[ShippingQuote]:
        response = await self._call(
            courier,
            "quote",
            "POST",
            "/v1/quotes",
            json={
                "destination_country": parcel.destination_country,
                "postal_code": parcel.postal_code,
                "weight_grams": parcel.weight_grams,
            },
        )
        if response.status_code != 200:
            log.info("%s gives no quote: %s", courier, _problems(response)[0])
            return []
        return [
            ShippingQuote(
                courier=courier,
                service=q["service"],
                amount_minor=int(q["amount_minor"]),
                currency=q["currency"],
                estimated_days=int(q["estimated_days"]),
            )
            for q in response.json()["quotes"]
        ]

    async def quote(self, parcel: Parcel) -> list[ShippingQuote]:
        answers = await asyncio.gather(
            *(self._quote_one(c, parcel) for c in self._couriers), return_exceptions=True
        )
        quotes: list[ShippingQuote] = []
        failures = 0
        for courier, answer in zip(self._couriers, answers, strict=True):
            if isinstance(answer, CircuitOpen | ProviderFailure):
                log.warning("no quote from %s: %s", courier, answer)
                failures += 1
            elif isinstance(answer, BaseException):
                raise answer
            else:
                quotes.extend(answer)
        if failures == len(self._couriers):
            raise CourierUnavailable("no courier answered the quote request")
        return sorted(quotes, key=lambda q: (q.amount_minor, q.estimated_days))

    # --- shipments ----------------------------------------------------------

    async def create_shipment(
        self, *, option_id: str, parcel: Parcel, order_reference: str, address: dict[str, str]
    ) -> Shipment:
        courier, _, service = option_id.partition(":")
        if courier not in self._couriers or not service:
            raise ShipmentRejected(f"unknown shipping option {option_id!r}")
        body: dict[str, Any] = {
            "service": service,
            "order_reference": order_reference,
            "recipient": {
                "name": address.get("name", ""),
                "line1": address.get("line1", ""),
                "line2": address.get("line2", ""),
                "city": address.get("city", ""),
                "postal_code": address.get("postal_code", parcel.postal_code),
                "country": address.get("country", parcel.destination_country),
            },
            "weight_grams": parcel.weight_grams,
        }
        if parcel.items:
            body["customs"] = {
                "currency": parcel.currency,
                "declared_value_minor": parcel.declared_value_minor,
                "items": [
                    {
                        "hs_code": item.hs_code,
                        "description": item.description,
                        "quantity": item.quantity,
                        "value_minor": item.value_minor,
                        "origin_country": item.origin_country,
                    }
                    for item in parcel.items
                ],
            }
        try:
            response = await self._call(
                courier,
                "shipment",
                "POST",
                "/v1/shipments",
                json=body,
                headers={"Idempotency-Key": f"shipment:{order_reference}"},
            )
        except (CircuitOpen, ProviderFailure) as exc:
            metrics.SHIPMENTS.labels(courier=courier, state="failed").inc()
            raise CourierUnavailable(f"{courier} could not create the shipment: {exc}") from exc
        if response.status_code not in (200, 201):
            metrics.SHIPMENTS.labels(courier=courier, state="failed").inc()
            message, problems = _problems(response)
            raise ShipmentRejected(f"{courier} refused the shipment: {message}", problems)
        data = response.json()
        if response.status_code == 201:
            metrics.SHIPMENTS.labels(courier=courier, state="created").inc()
        return Shipment(
            courier=courier, tracking_number=data["tracking_number"], label_url=data["label_url"]
        )

    async def tracking(self, *, courier: str, tracking_number: str) -> list[TrackingEvent]:
        if courier not in self._couriers:
            raise ValueError(f"unknown courier {courier!r}")
        try:
            response = await self._call(
                courier, "tracking", "GET", f"/v1/shipments/{tracking_number}/events"
            )
        except (CircuitOpen, ProviderFailure) as exc:
            raise CourierUnavailable(f"{courier} tracking unavailable: {exc}") from exc
        if response.status_code != 200:
            raise ShipmentRejected(f"{courier}: {_problems(response)[0]}")
        return [tracking_event_from(e) for e in response.json()["events"]]


def build_courier_gateway(settings: PartnersSettings) -> HttpCourierGateway:
    """The shop's CourierGateway; close it with `aclose()` when the app stops."""
    caller = ResilientCaller(
        attempts=settings.courier_attempts,
        backoff_initial_seconds=settings.retry_backoff_initial_seconds,
        backoff_max_seconds=settings.retry_backoff_max_seconds,
        breaker_failure_threshold=settings.breaker_failure_threshold,
        breaker_reset_seconds=settings.breaker_reset_seconds,
    )
    return HttpCourierGateway(
        base_url=settings.couriers_base_url,
        couriers=list(settings.couriers),
        client=httpx.AsyncClient(
            timeout=httpx.Timeout(settings.courier_timeout_seconds),
            verify=tls_verification(settings),
        ),
        caller=caller,
    )
