"""Ops endpoints: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from app.api.deps import ServicesDep
from app.observability.metrics import render_latest

router = APIRouter(tags=["ops"])
READINESS_TIMEOUT_SECONDS = 2.0


@router.get("/healthz", summary="Process is alive (no I/O)")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Database and cache reachable; 503 naming the failing check",
    responses={503: {"description": "a dependency is unreachable"}},
)
async def readyz(services: ServicesDep) -> JSONResponse:
    checks: dict[str, str] = {}
    for name, probe in (("database", services.db.ping), ("cache", services.cache.ping)):
        try:
            await asyncio.wait_for(probe(), READINESS_TIMEOUT_SECONDS)
            checks[name] = "ok"
        except TimeoutError:
            checks[name] = f"timeout after {READINESS_TIMEOUT_SECONDS:g}s"
        except Exception as exc:
            checks[name] = f"{type(exc).__name__}: {exc}"[:300]
    failing = [name for name, result in checks.items() if result != "ok"]
    if failing:
        message = "; ".join(f"{name}: {checks[name]}" for name in failing)
        return JSONResponse(
            {
                "error": {
                    "code": "not_ready",
                    "message": message,
                    "failing": failing,
                    "checks": checks,
                }
            },
            status_code=503,
        )
    return JSONResponse({"status": "ready", "checks": checks})


@router.get("/metrics", summary="Prometheus metrics (all workers)", include_in_schema=True)
async def metrics() -> Response:
    body, content_type = await asyncio.to_thread(render_latest)
    return Response(body, media_type=content_type)
