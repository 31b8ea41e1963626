"""The catalog read cache: serialized JSON bodies by key.

Two implementations with one interface:

- `LocalCache` (default): an in-process TTL cache per worker. An admin write
  clears the writing worker's cache at once; the other workers serve the old
  entry until its TTL (CACHE_TTL_SECONDS, default 5 s) runs out.
- `RedisCache` (REDIS_URL set): one cache shared by all workers and hosts; an
  admin write deletes the key, so every worker sees the change at once.

Search results are keyed under a generation number that every write to the
catalog bumps, so one increment retires all cached searches.

A cache failure never fails a request: it is logged and counts as a miss.
"""

from __future__ import annotations

import logging
from typing import Protocol

import redis.asyncio as redis_asyncio
from cachetools import TTLCache
from redis.exceptions import RedisError

log = logging.getLogger("shop.cache")


class CatalogCache(Protocol):
    backend: str

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes) -> None: ...

    async def delete(self, *keys: str) -> None: ...

    async def generation(self) -> int: ...

    async def bump_generation(self) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class LocalCache:
    backend = "memory"

    def __init__(self, *, ttl_seconds: float, max_entries: int) -> None:
        self._entries: TTLCache[str, bytes] = TTLCache(maxsize=max_entries, ttl=ttl_seconds)
        self._generation = 0

    async def get(self, key: str) -> bytes | None:
        return self._entries.get(key)

    async def set(self, key: str, value: bytes) -> None:
        self._entries[key] = value

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._entries.pop(key, None)

    async def generation(self) -> int:
        return self._generation

    async def bump_generation(self) -> None:
        self._generation += 1

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._entries.clear()


class RedisCache:
    backend = "redis"
    _PREFIX = "shop:catalog:"
    _GENERATION_KEY = "shop:catalog:generation"

    def __init__(self, url: str, *, ttl_seconds: float) -> None:
        self._client = redis_asyncio.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=30
        )
        self._ttl_ms = int(ttl_seconds * 1000)

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._client.get(self._PREFIX + key)
        except (RedisError, OSError) as exc:
            log.warning("cache get failed", extra={"error": str(exc)})
            return None
        return value

    async def set(self, key: str, value: bytes) -> None:
        try:
            await self._client.set(self._PREFIX + key, value, px=self._ttl_ms)
        except (RedisError, OSError) as exc:
            log.warning("cache set failed", extra={"error": str(exc)})

    async def delete(self, *keys: str) -> None:
        if not keys:
            return
        try:
            await self._client.delete(*(self._PREFIX + k for k in keys))
        except (RedisError, OSError) as exc:
            log.warning("cache delete failed", extra={"error": str(exc)})

    async def generation(self) -> int:
        try:
            value = await self._client.get(self._GENERATION_KEY)
        except (RedisError, OSError) as exc:
            log.warning("cache generation read failed", extra={"error": str(exc)})
            return -1  # an unusable generation: search results are neither read nor kept
        return int(value or 0)

    async def bump_generation(self) -> None:
        try:
            await self._client.incr(self._GENERATION_KEY)
        except (RedisError, OSError) as exc:
            log.warning("cache generation bump failed", extra={"error": str(exc)})

    async def ping(self) -> None:
        await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()


def build_cache(
    redis_url: str | None, *, ttl_seconds: float, redis_ttl_seconds: float, max_entries: int
) -> CatalogCache:
    if redis_url:
        return RedisCache(redis_url, ttl_seconds=redis_ttl_seconds)
    return LocalCache(ttl_seconds=ttl_seconds, max_entries=max_entries)
