"""PaymentGateway over HTTP: channels, retries, card failover, circuit breakers.

For a charge, the channel's providers are tried in the configured order (for
cards: primary, then secondary). Each provider gets a few attempts with
backoff, under its own circuit breaker and within the request's deadline
(app/partners/deadline.py); the checkout's idempotency key goes with every
attempt, so a retry never charges twice at one provider. A decline is final
(retrying or failing over would only annoy the bank).

When a provider refused to answer (5xx, 503 outage, connection refused,
connect timeout, open circuit) nothing was charged there, and the next
provider is tried; when none is left the result is PaymentStatus.ERROR. When
the answer was lost after the request may have been carried out (a timeout,
a 504, a dropped connection), the provider is asked what it holds for the
idempotency key before anything else happens: a captured charge is APPROVED,
a declined one DECLINED, no charge at all moves on to the next provider, and
if the provider cannot be asked the result is PaymentStatus.UNKNOWN and no
other provider is charged (the shop's reconciler settles it).

Only tokens travel: a request whose token looks like a card number is refused
before anything is sent or logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx

from app.partners import deadline, metrics
from app.partners.interfaces import (
    ChargeLookup,
    ChargeRequest,
    ChargeResult,
    ChargeState,
    PaymentChannel,
    PaymentStatus,
    RefundResult,
)
from app.partners.payments.pci import looks_like_card_number
from app.partners.resilience import (
    DEADLINE,
    CircuitOpen,
    ProviderFailure,
    ResilientCaller,
    request_timeout,
)
from app.partners.settings import PartnersSettings, tls_verification

log = logging.getLogger(__name__)

IDEMPOTENCY_CONFLICT = "idempotency_conflict"

# Failures after which nothing can have reached the provider: no connection was made
# (or the request could not even be formed), so it cannot have charged.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)


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
        lookup_attempts: int = 2,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._routes = routes
        self._client = client
        self._caller = caller
        self._lookup_attempts = lookup_attempts
        metrics.declare_payment_series(routes)
        metrics.declare_payment_lookup_series(routes)

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
            # Only an ERROR means "nothing charged here": APPROVED and DECLINED are final,
            # UNKNOWN (it may have charged) must not be charged anywhere else.
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
        """Every attempt at one provider, then, if an answer was lost, what it holds for the key."""
        maybe_charged = False

        async def attempt() -> ChargeResult:
            nonlocal maybe_charged
            try:
                return await self._attempt(provider, request)
            except ProviderFailure as exc:
                maybe_charged = maybe_charged or exc.maybe_processed
                raise

        try:
            result = await self._caller.call(provider, attempt)
        except CircuitOpen:
            result = ChargeResult(PaymentStatus.ERROR, provider, reason="circuit_open")
        except ProviderFailure as exc:
            result = ChargeResult(PaymentStatus.ERROR, provider, reason=f"{exc.kind}: {exc}")
        if (
            result.status != PaymentStatus.ERROR
            or result.reason == IDEMPOTENCY_CONFLICT
            or not maybe_charged
        ):
            return result
        return await self._settle(provider, request, failure=result.reason or "no answer")

    async def _settle(self, provider: str, request: ChargeRequest, *, failure: str) -> ChargeResult:
        """An answer from `provider` was lost: ask it what it holds for the idempotency key."""
        channel = request.channel.value
        found, decline_code = await self._lookup_at(
            request.channel, provider, request.idempotency_key
        )
        log.warning(
            "payment %s: the answer of %s was lost (%s); lookup by key: %s",
            request.order_reference,
            provider,
            failure,
            found.state.value,
        )
        if found.state in (ChargeState.CAPTURED, ChargeState.DECLINED) and (
            found.amount_minor,
            found.currency,
        ) != (request.amount_minor, request.currency):
            # The key holds another request's charge: what a 409 says, and as final.
            log.error(
                "payment %s: %s holds %s %s %s for key %s, not this request's amount",
                request.order_reference,
                provider,
                found.provider_reference,
                found.amount_minor,
                found.currency,
                request.idempotency_key,
            )
            return ChargeResult(PaymentStatus.ERROR, provider, reason=IDEMPOTENCY_CONFLICT)
        if found.state == ChargeState.CAPTURED:
            self._count(channel, provider, "approved")
            return ChargeResult(
                PaymentStatus.APPROVED, provider, provider_reference=found.provider_reference
            )
        if found.state == ChargeState.DECLINED:
            self._count(channel, provider, "declined")
            return ChargeResult(
                PaymentStatus.DECLINED,
                provider,
                provider_reference=found.provider_reference,
                reason=decline_code or "declined",
            )
        if found.state == ChargeState.ABSENT:
            # Nothing was charged here: as safe to move on as after a refusal.
            return ChargeResult(
                PaymentStatus.ERROR, provider, reason=f"{failure}; no charge at {provider}"
            )
        self._count(channel, provider, "unknown")
        return ChargeResult(
            PaymentStatus.UNKNOWN,
            provider,
            reason=f"{failure}; {provider} could not be asked whether it charged",
        )

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
        """POST to a provider; a 5xx, 408, 429, timeout or network error raises ProviderFailure.

        The failure's `maybe_processed` says whether the provider may have carried
        the request out: after a timeout, a 504 or a connection lost once the
        request was sent, yes; after a refused connection, a connect timeout or
        an HTTP refusal (5xx other than 504, 408, 429), no.
        """
        url = f"{self._base_url}/{provider}{path}"
        started = time.perf_counter()
        try:
            async with deadline.hard_stop():
                response = await self._client.post(
                    url,
                    json=payload,
                    headers={"Idempotency-Key": key},
                    timeout=request_timeout(self._client.timeout),
                )
        except (httpx.TimeoutException, TimeoutError) as exc:
            self._count(channel, provider, "timeout")
            sent = not isinstance(exc, _NOT_SENT)
            # A timeout cut short by the deadline is the budget's, not the provider's.
            kind = DEADLINE if deadline.spent() else "timeout"
            raise ProviderFailure(
                provider, kind, f"no answer in time ({exc!r})", maybe_processed=sent
            ) from exc
        except httpx.TransportError as exc:
            self._count(channel, provider, "error")
            sent = not isinstance(exc, _NOT_SENT)
            raise ProviderFailure(
                provider,
                "error",
                f"{'connection lost' if sent else 'unreachable'} ({exc!r})",
                maybe_processed=sent,
            ) from exc
        finally:
            metrics.PAYMENT_DURATION.labels(channel=channel, provider=provider).observe(
                time.perf_counter() - started
            )
        if response.status_code == 504:
            # A gateway gave up waiting for the provider, which may have carried it out.
            self._count(channel, provider, "timeout")
            raise ProviderFailure(provider, "timeout", "HTTP 504", maybe_processed=True)
        if response.status_code == 408:
            self._count(channel, provider, "timeout")
            raise ProviderFailure(provider, "timeout", "HTTP 408")
        if response.status_code >= 500 or response.status_code == 429:
            self._count(channel, provider, "error")
            raise ProviderFailure(provider, "error", f"HTTP {response.status_code}")
        return response

    @staticmethod
    def _count(channel: str, provider: str, outcome: str) -> None:
        metrics.PAYMENT_ATTEMPTS.labels(channel=channel, provider=provider, outcome=outcome).inc()

    # --- lookup -------------------------------------------------------------

    async def lookup(self, *, channel: PaymentChannel, idempotency_key: str) -> list[ChargeLookup]:
        """What every provider of `channel` holds for `idempotency_key`, asked at once.

        A provider that cannot be asked (outage, timeout, 5xx, open circuit, no
        time left before the deadline) is reported UNKNOWN; nothing is raised.
        """
        providers = self._routes.get(channel, [])
        found = await asyncio.gather(
            *(self._lookup_at(channel, p, idempotency_key) for p in providers)
        )
        return [lookup for lookup, _ in found]

    async def _lookup_at(
        self, channel: PaymentChannel, provider: str, key: str
    ) -> tuple[ChargeLookup, str | None]:
        """What `provider` holds for `key`, and the decline code of a declined charge."""
        found, decline_code = await self._ask(channel.value, provider, key)
        metrics.PAYMENT_LOOKUPS.labels(
            channel=channel.value, provider=provider, state=found.state.value
        ).inc()
        return found, decline_code

    async def _ask(self, channel: str, provider: str, key: str) -> tuple[ChargeLookup, str | None]:
        unknown = ChargeLookup(provider, ChargeState.UNKNOWN)
        url = f"{self._base_url}/{provider}/v1/charges"

        async def attempt() -> httpx.Response:
            try:
                async with deadline.hard_stop():
                    response = await self._client.get(
                        url,
                        params={"idempotency_key": key},
                        timeout=request_timeout(self._client.timeout),
                    )
            except (httpx.TimeoutException, TimeoutError) as exc:
                kind = DEADLINE if deadline.spent() else "timeout"
                raise ProviderFailure(provider, kind, f"no answer in time ({exc!r})") from exc
            except httpx.TransportError as exc:
                raise ProviderFailure(provider, "error", f"unreachable ({exc!r})") from exc
            if response.status_code >= 500 or response.status_code in (408, 429):
                raise ProviderFailure(provider, "error", f"HTTP {response.status_code}")
            return response

        try:
            response = await self._caller.call(provider, attempt, attempts=self._lookup_attempts)
        except (CircuitOpen, ProviderFailure) as exc:
            log.warning("lookup of key %s at %s failed: %s", key, provider, exc)
            return unknown, None
        try:
            items = response.json()["items"] if response.status_code == 200 else None
        except (ValueError, KeyError, TypeError):
            items = None
        if not isinstance(items, list):
            log.warning("lookup of key %s at %s: unexpected answer %s", key, provider, response)
            return unknown, None
        charges = [c for c in items if isinstance(c, dict) and c.get("idempotency_key") == key]
        if not charges:
            return ChargeLookup(provider, ChargeState.ABSENT), None
        # One key is at most one charge at a provider; prefer a capture if there were more.
        charge = next((c for c in charges if c.get("status") == "succeeded"), charges[0])
        state = (
            ChargeState.CAPTURED if charge.get("status") == "succeeded" else ChargeState.DECLINED
        )
        found = ChargeLookup(
            provider,
            state,
            provider_reference=charge.get("id"),
            amount_minor=charge.get("amount_minor"),
            currency=charge.get("currency"),
        )
        return found, charge.get("decline_code")

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
        timeout=httpx.Timeout(settings.payment_timeout_seconds),
        headers=headers,
        verify=tls_verification(settings),
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
        lookup_attempts=settings.payment_lookup_attempts,
    )
