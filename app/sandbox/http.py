"""What every sandbox HTTP app shares: JSON errors, `/metrics`, `/healthz`, fault admin."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.sandbox import metrics
from app.sandbox.faults import FaultBoard, FaultTriggered, fault_admin_router
from app.sandbox.metrics import Outcome

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def error_body(code: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": {"code": code, "message": message, **extra}}


def _count_rejection(request: Request, board: FaultBoard, service_param: str) -> None:
    service = request.scope.get("path_params", {}).get(service_param)
    if service in board.services:
        metrics.record(service, Outcome.REJECTED)


def sandbox_app(
    title: str,
    board: FaultBoard,
    *,
    service_param: str | None = None,
    lifespan: Lifespan | None = None,
) -> FastAPI:
    """A FastAPI app with the sandbox conventions.

    `service_param` names the path parameter that says which service (provider,
    courier) a request is for, so that rejected requests are counted against it.
    """
    app = FastAPI(title=title, docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.faults = board

    @app.exception_handler(FaultTriggered)
    async def _fault(_: Request, exc: FaultTriggered) -> JSONResponse:
        return JSONResponse(
            error_body(f"injected_{exc.outcome.value}", exc.message),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if service_param and 400 <= exc.status_code < 500:
            _count_rejection(request, board, service_param)
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        return JSONResponse(
            error_body(f"http_{exc.status_code}", detail), exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if service_param:
            _count_rejection(request, board, service_param)
        problems = [
            {"field": ".".join(str(p) for p in err["loc"][1:]), "problem": err["msg"]}
            for err in exc.errors()
        ]
        return JSONResponse(
            error_body("invalid_request", "the request is not valid", problems=problems), 422
        )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    app.include_router(fault_admin_router(board))
    return app
