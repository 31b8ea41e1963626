"""Guards of the anonymous shipping quote: a short cache of courier answers and a rate limit.

`POST /api/checkout/quote` needs no account and asks every courier, so without these one
client could make the shop fan out to all couriers as fast as it can send.

- Cache: a courier answer depends on the destination country and the weight (the
  couriers price per started kilogram and do not price by declared value or postal
  code: app/sandbox/couriers/rates.py, the quote body has neither). Answers are kept
  for QUOTE_CACHE_TTL_SECONDS keyed by (country, the first QUOTE_POSTAL_PREFIX_CHARS
  characters of the postal code (0: none), weight band of QUOTE_WEIGHT_BAND_GRAMS,
  currency); the couriers are asked for the band's top weight, so a band shows the
  price of its heaviest parcel (with 500 g bands under per-kilogram pricing that is the
  exact price). In-process first, then the shared catalog cache when it is Redis
  (entries carry their time and are ignored after the TTL). Concurrent misses of one
  key share one courier call. Only answers are cached, never failures.
- Rate limit: a token bucket per client IP per worker process (QUOTE_RATE_BURST quotes
  at once, QUOTE_RATE_PER_MINUTE refill); beyond it TooManyAttempts (429, Retry-After).

Checkout does not use this cache: it re-quotes the chosen option fresh, for the
parcel's exact weight, and never trusts a price from the client (app/domain/checkout).

The client identity is `client_var`, set by the web edge for each request
(app/observability/middleware.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import asdict, dataclass

import orjson
from cachetools import LRUCache, TTLCache

from app.domain.cache import CatalogCache
from app.domain.errors import TooManyAttempts
from app.partners.interfaces import ShippingQuote
from app.settings import Settings, get_settings

log = logging.getLogger("shop.quotes")

client_var: ContextVar[str | None] = ContextVar("quote_client", default=None)

_MAX_CLIENTS = 100_000
_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class QuotePolicy:
    ttl_seconds: float = 60.0
    weight_band_grams: int = 500
    postal_prefix_chars: int = 0
    burst: int = 30
    per_minute: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> QuotePolicy:
        return cls(
            ttl_seconds=settings.quote_cache_ttl_seconds,
            weight_band_grams=settings.quote_weight_band_grams,
            postal_prefix_chars=settings.quote_postal_prefix_chars,
            burst=settings.quote_rate_burst,
            per_minute=settings.quote_rate_per_minute,
        )

    def band_weight(self, weight_grams: int) -> int:
        """The top weight of the band `weight_grams` falls in."""
        band = max(1, math.ceil(weight_grams / self.weight_band_grams))
        return band * self.weight_band_grams

    def key(self, country: str, postal_code: str, weight_grams: int, currency: str) -> str:
        prefix = "".join(postal_code.split()).upper()[: self.postal_prefix_chars] or "-"
        return f"quote:v1:{country}:{prefix}:{self.band_weight(weight_grams)}:{currency}"


class TokenBuckets:
    """One token bucket per client, in this process."""

    def __init__(self, *, burst: int, per_minute: float) -> None:
        self._burst = float(burst)
        self._rate = per_minute / 60.0
        self._buckets: LRUCache[str, tuple[float, float]] = LRUCache(maxsize=_MAX_CLIENTS)

    def take(self, client: str) -> float | None:
        """Take a token; None when granted, else the seconds until one is there."""
        now = time.monotonic()
        tokens, at = self._buckets.get(client, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens >= 1.0:
            self._buckets[client] = (tokens - 1.0, now)
            return None
        self._buckets[client] = (tokens, now)
        return (1.0 - tokens) / self._rate


def _encode(quotes: list[ShippingQuote]) -> bytes:
    return orjson.dumps({"at": time.time(), "quotes": [asdict(q) for q in quotes]})


def _decode(value: bytes, ttl_seconds: float) -> list[ShippingQuote] | None:
    try:
        data = orjson.loads(value)
        if time.time() - float(data["at"]) >= ttl_seconds:
            return None
        return [ShippingQuote(**q) for q in data["quotes"]]
    except (ValueError, KeyError, TypeError):
        return None


class QuoteCache:
    def __init__(self, policy: QuotePolicy) -> None:
        self._policy = policy
        self._local: TTLCache[str, list[ShippingQuote]] | None = (
            TTLCache(maxsize=_MAX_ENTRIES, ttl=policy.ttl_seconds)
            if policy.ttl_seconds > 0
            else None
        )
        self._inflight: dict[str, asyncio.Future[list[ShippingQuote]]] = {}

    async def get_or_fetch(
        self,
        key: str,
        shared: CatalogCache | None,
        fetch: Callable[[], Awaitable[list[ShippingQuote]]],
    ) -> list[ShippingQuote]:
        if self._local is None:
            return await fetch()
        found = self._local.get(key)
        if found is not None:
            return found
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[list[ShippingQuote]] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            quotes = await self._shared_get(key, shared)
            if quotes is None:
                quotes = await fetch()
                if shared is not None:
                    await shared.set(key, _encode(quotes))
            self._local[key] = quotes
            future.set_result(quotes)
            return quotes
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            del self._inflight[key]

    async def _shared_get(
        self, key: str, shared: CatalogCache | None
    ) -> list[ShippingQuote] | None:
        if shared is None:
            return None
        value = await shared.get(key)
        return None if value is None else _decode(value, self._policy.ttl_seconds)


@dataclass
class QuoteGuard:
    policy: QuotePolicy
    buckets: TokenBuckets
    cache: QuoteCache

    @classmethod
    def build(cls, policy: QuotePolicy) -> QuoteGuard:
        return cls(
            policy=policy,
            buckets=TokenBuckets(burst=policy.burst, per_minute=policy.per_minute),
            cache=QuoteCache(policy),
        )

    def admit(self, client: str | None) -> None:
        """Take one quote from the client's bucket, or raise TooManyAttempts."""
        wait = self.buckets.take(client or "unknown")
        if wait is not None:
            raise TooManyAttempts(
                "too many shipping quotes from this client; try again shortly",
                retry_after_seconds=max(1, math.ceil(wait)),
            )


_guard: QuoteGuard | None = None


def guard() -> QuoteGuard:
    """This process's guard, from the settings of the environment."""
    global _guard
    if _guard is None:
        _guard = QuoteGuard.build(QuotePolicy.from_settings(get_settings()))
    return _guard
