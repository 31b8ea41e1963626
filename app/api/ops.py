"""Ops endpoints: liveness, readiness, metrics.

- `/healthz` is liveness: the process answers (no I/O, no dependency).
- `/readyz` is readiness, "send me traffic": only what the shop cannot serve without,
  the database. The cache is optional by design (without Redis the shop serves from
  the database, slower), so it is not a readiness check. The database is asked on the
  probe's own small engine (one connection, `ReadinessProbe`), never from the request
  pool: a saturated pool neither fails the probe nor lends it a request connection.
  One check per process runs at a time and its answer is shared for
  READINESS_CACHE_SECONDS; the answer names no host, user or error (the log does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from app.db.session import Database, DatabaseTimeouts
from app.observability.metrics import render_latest
from app.settings import Settings

router = APIRouter(tags=["ops"])
log = logging.getLogger("shop.readiness")


class ReadinessProbe:
    """Whether the database answers, asked on a dedicated one-connection engine."""

    def __init__(self, settings: Settings) -> None:
        self._url = settings.database_url
        self._timeouts = DatabaseTimeouts.from_settings(settings)
        self._cache_seconds = settings.readiness_cache_seconds
        self._timeout_seconds = settings.readiness_timeout_seconds
        self._db: Database | None = None
        self._lock = asyncio.Lock()
        self._checked_at = float("-inf")
        self._ready = False

    def _database(self) -> Database:
        if self._db is None:
            self._db = Database(self._url, pool_size=1, max_overflow=0, timeouts=self._timeouts)
        return self._db

    def _fresh(self) -> bool:
        return time.monotonic() - self._checked_at < self._cache_seconds

    async def database_ready(self) -> bool:
        if self._fresh():
            return self._ready
        async with self._lock:  # concurrent probes wait for the one check in flight
            if not self._fresh():
                started = time.monotonic()  # an answer's age counts from when it was asked
                self._ready = await self._check()
                self._checked_at = started
            return self._ready

    async def _check(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout_seconds):
                await self._database().ping()
        except Exception as exc:
            log.warning("readiness: database unavailable", extra={"error": type(exc).__name__})
            return False
        return True

    async def aclose(self) -> None:
        if self._db is not None:
            await self._db.dispose()
            self._db = None


@router.get("/healthz", summary="Process is alive (no I/O)")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


class ReadinessOut(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[Literal["database"], Literal["ok", "unavailable"]]


@router.get(
    "/readyz",
    summary="Ready for traffic: the database answers (the optional cache is not checked)",
    response_model=ReadinessOut,
    responses={503: {"model": ReadinessOut, "description": "the database is unavailable"}},
)
async def readyz(request: Request) -> JSONResponse:
    probe: ReadinessProbe = request.app.state.readiness
    ready = await probe.database_ready()
    return JSONResponse(
        {
            "status": "ready" if ready else "not_ready",
            "checks": {"database": "ok" if ready else "unavailable"},
        },
        status_code=200 if ready else 503,
        headers={"Cache-Control": "no-store"},
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics (all workers), in the Prometheus text format",
    response_class=PlainTextResponse,
)
async def metrics() -> Response:
    body, content_type = await asyncio.to_thread(render_latest)
    return Response(body, media_type=content_type)
