"""PaymentGateway over HTTP: channels, retries, card failover, circuit breakers.

For a charge, the channel's providers are tried in the configured order (for
cards: primary, then secondary). Each provider gets a few attempts with
backoff, under its own circuit breaker; the checkout's idempotency key goes
with every attempt, so a retry never charges twice at one provider. A decline
is final (retrying or failing over would only annoy the bank); an error or
timeout moves on to the next provider; when none is left the result is
PaymentStatus.ERROR. Only tokens travel: a request whose token looks like a
card number is refused before anything is sent or logged.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from app.partners import metrics
from app.partners.interfaces import (
    ChargeRequest,
    ChargeResult,
    PaymentChannel,
    PaymentStatus,
    RefundResult,
)
from app.partners.payments.pci import looks_like_card_number
from app.partners.resilience import CircuitOpen, ProviderFailure, ResilientCaller
from app.partners.settings import PartnersSettings

log = logging.getLogger(__name__)

IDEMPOTENCY_CONFLICT = "idempotency_conflict"


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


class HttpPaymentGateway:
    def __init__(
        self,
        *,
        base_url: str,
        routes: dict[PaymentChannel, list[str]],
        client: httpx.AsyncClient,
        caller: ResilientCaller,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._routes = routes
        self._client = client
        self._caller = caller
        metrics.declare_payment_series(routes)

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- charge -------------------------------------------------------------

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        if looks_like_card_number(request.payment_token):
            log.warning(
                "refused a charge for %s: card data instead of a token", request.order_reference
            )
            return ChargeResult(PaymentStatus.DECLINED, provider="", reason="raw_card_data")
        providers = self._routes.get(request.channel, [])
        if not providers:
            return ChargeResult(
                PaymentStatus.ERROR, provider="", reason=f"no provider for {request.channel}"
            )
        result = ChargeResult(PaymentStatus.ERROR, provider="", reason="not attempted")
        for provider in providers:
            result = await self._charge_at(provider, request)
            if result.status != PaymentStatus.ERROR or result.reason == IDEMPOTENCY_CONFLICT:
                break
            log.warning(
                "payment %s: %s failed (%s), trying the next provider",
                request.order_reference,
                provider,
                result.reason,
            )
        log.info(
            "payment %s via %s: %s%s",
            request.order_reference,
            result.provider,
            result.status.value,
            f" ({result.reason})" if result.reason else "",
        )
        return result

    async def _charge_at(self, provider: str, request: ChargeRequest) -> ChargeResult:
        try:
            return await self._caller.call(provider, lambda: self._attempt(provider, request))
        except CircuitOpen:
            return ChargeResult(PaymentStatus.ERROR, provider, reason="circuit_open")
        except ProviderFailure as exc:
            return ChargeResult(PaymentStatus.ERROR, provider, reason=f"{exc.kind}: {exc}")

    async def _attempt(self, provider: str, request: ChargeRequest) -> ChargeResult:
        channel = request.channel.value
        payload = {
            "amount_minor": request.amount_minor,
            "currency": request.currency,
            "token": request.payment_token,
            "order_reference": request.order_reference,
            "customer_reference": request.customer_reference,
        }
        response = await self._post(
            channel, provider, "/v1/charges", payload, request.idempotency_key
        )
        body = (
            response.json()
            if response.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        if response.status_code in (200, 201) and body.get("status") == "succeeded":
            self._count(channel, provider, "approved")
            return ChargeResult(PaymentStatus.APPROVED, provider, provider_reference=body["id"])
        if response.status_code == 402:
            self._count(channel, provider, "declined")
            return ChargeResult(
                PaymentStatus.DECLINED,
                provider,
                provider_reference=body.get("id"),
                reason=body.get("decline_code") or "declined",
            )
        if response.status_code in (400, 422):
            # The provider refused what the customer gave (a bad token): no retry helps.
            self._count(channel, provider, "declined")
            return ChargeResult(
                PaymentStatus.DECLINED, provider, reason=f"invalid: {_error_message(response)}"
            )
        self._count(channel, provider, "error")
        if response.status_code == 409:
            return ChargeResult(PaymentStatus.ERROR, provider, reason=IDEMPOTENCY_CONFLICT)
        return ChargeResult(
            PaymentStatus.ERROR, provider, reason=f"unexpected answer {response.status_code}"
        )

    async def _post(
        self, channel: str, provider: str, path: str, payload: dict[str, Any], key: str
    ) -> httpx.Response:
        """POST to a provider; a 5xx, 408, 429, timeout or network error raises ProviderFailure."""
        url = f"{self._base_url}/{provider}{path}"
        started = time.perf_counter()
        try:
            response = await self._client.post(url, json=payload, headers={"Idempotency-Key": key})
        except httpx.TimeoutException as exc:
            self._count(channel, provider, "timeout")
            raise ProviderFailure(provider, "timeout", f"no answer in time ({exc!r})") from exc
        except httpx.TransportError as exc:
            self._count(channel, provider, "error")
            raise ProviderFailure(provider, "error", f"unreachable ({exc!r})") from exc
        finally:
            metrics.PAYMENT_DURATION.labels(channel=channel, provider=provider).observe(
                time.perf_counter() - started
            )
        if response.status_code == 504 or response.status_code == 408:
            self._count(channel, provider, "timeout")
            raise ProviderFailure(provider, "timeout", f"HTTP {response.status_code}")
        if response.status_code >= 500 or response.status_code == 429:
            self._count(channel, provider, "error")
            raise ProviderFailure(provider, "error", f"HTTP {response.status_code}")
        return response

    @staticmethod
    def _count(channel: str, provider: str, outcome: str) -> None:
        metrics.PAYMENT_ATTEMPTS.labels(channel=channel, provider=provider, outcome=outcome).inc()

    # --- refund -------------------------------------------------------------

    def _channel_of(self, provider: str) -> str:
        for channel, providers in self._routes.items():
            if provider in providers:
                return channel.value
        return "unknown"

    async def refund(
        self,
        *,
        provider: str,
        provider_reference: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
    ) -> RefundResult:
        channel = self._channel_of(provider)
        payload = {"charge_id": provider_reference, "amount_minor": amount_minor}

        async def attempt() -> httpx.Response:
            return await self._post(channel, provider, "/v1/refunds", payload, idempotency_key)

        try:
            response = await self._caller.call(provider, attempt)
        except CircuitOpen:
            return RefundResult(False, reason="circuit_open")
        except ProviderFailure as exc:
            return RefundResult(False, reason=f"{exc.kind}: {exc}")
        if response.status_code in (200, 201):
            body = response.json()
            if body.get("currency") not in (None, currency):
                log.warning(
                    "refund %s: provider currency %s differs from %s",
                    body.get("id"),
                    body.get("currency"),
                    currency,
                )
            return RefundResult(True, provider_reference=body["id"])
        return RefundResult(False, reason=_error_message(response))


def build_payment_gateway(settings: PartnersSettings) -> HttpPaymentGateway:
    """The shop's PaymentGateway; close it with `aclose()` when the app stops."""
    headers = {}
    if settings.payments_api_key is not None:
        headers["Authorization"] = f"Bearer {settings.payments_api_key.get_secret_value()}"
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.payment_timeout_seconds), headers=headers
    )
    caller = ResilientCaller(
        attempts=settings.payment_attempts_per_provider,
        backoff_initial_seconds=settings.retry_backoff_initial_seconds,
        backoff_max_seconds=settings.retry_backoff_max_seconds,
        breaker_failure_threshold=settings.breaker_failure_threshold,
        breaker_reset_seconds=settings.breaker_reset_seconds,
        on_state_change=lambda provider, state: metrics.PAYMENT_CIRCUIT_STATE.labels(
            provider=provider
        ).set(state),
    )
    return HttpPaymentGateway(
        base_url=settings.payments_base_url,
        routes=settings.payment_routes,
        client=client,
        caller=caller,
    )
