"""Errors as the API speaks them: `{"error": {"code", "message", ...}}` with a fitting status.

The domain raises `app.domain.errors.DomainError`s; this module, the web edge,
maps each to its HTTP status (`HTTP_STATUS`) and renders every error the same way.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.db.session import DatabaseUnavailable
from app.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PaymentFailed,
    ShipmentRefused,
    TooManyAttempts,
    Unauthorized,
    UpstreamUnavailable,
)
from app.observability.logging import request_id_var

log = logging.getLogger("shop.error")


# The HTTP status of each domain refusal, decided here and nowhere else. A subclass
# without an entry takes its nearest base's (StepUpRequired is a Forbidden: 403).
HTTP_STATUS: dict[type[DomainError], int] = {
    DomainError: 400,
    InvalidRequest: 422,
    Unauthorized: 401,
    PaymentFailed: 402,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    ShipmentRefused: 422,
    TooManyAttempts: 429,
    UpstreamUnavailable: 503,
}


def http_status(error: DomainError) -> int:
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]  # type: ignore[index]
    return 400


def error_response(
    http_status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> JSONResponse:
    error = {"code": code, "message": message, "request_id": request_id_var.get()}
    error.update(details or {})
    return JSONResponse({"error": error}, status_code=http_status, headers=headers)


def _clean_validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Echo where and what, never the raw input (it may be huge, binary or hostile).
    return [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in errors[:20]
    ]


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    headers = {}
    if exc.retry_after_seconds is not None:
        headers["Retry-After"] = str(exc.retry_after_seconds)
    if exc.replayed:
        headers["Idempotent-Replayed"] = "true"
    return error_response(
        http_status(exc), exc.code, exc.message, headers=headers or None, details=exc.details
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _clean_validation_errors(list(exc.errors()))
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(p for p in first["loc"] if p not in ("body",)) or "request"
    return error_response(
        422, "invalid_request", f"{where}: {first['msg']}", details={"fields": errors}
    )


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette's own 405 names only those
    of the first route that matched the path, one of several when a path has a GET and a
    POST route)."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):  # included routers' routes too
        route_methods = route.methods
        if route_methods and route.matches(dict(request.scope))[0] != Match.NONE:
            methods |= route_methods
    return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # RFC 9110: a 405 lists what the resource does support
        headers["Allow"] = ", ".join(allowed_methods(request)) or headers.get("Allow", "")
    code = {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "body_too_large",
    }.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "request refused"
    return error_response(exc.status_code, code, message, headers=headers)


# --- the database out of reach: 503 ----------------------------------------------------
# Unreachable, not answering in time, busy, or gone mid-request: the client may retry.
# Programming and data errors (IntegrityError, ProgrammingError, ...) stay 500s.

DATABASE_RETRY_AFTER_SECONDS = 5
# SQLSTATE classes: connection exception, insufficient resources, operator intervention
# (57014 query_canceled: statement_timeout; admin/crash shutdown, cannot connect now),
# system error.
_PG_UNAVAILABLE_CLASSES = frozenset({"08", "53", "57", "58"})
# SQLite primary result codes: BUSY (busy timeout expired), LOCKED, IOERR, CANTOPEN.
_SQLITE_UNAVAILABLE_CODES = frozenset({5, 6, 10, 14})
_DATABASE_MODULES = frozenset({"sqlalchemy", "psycopg", "psycopg_pool", "aiosqlite"})


def _raised_by_database_code(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.partition(".")[0] in _DATABASE_MODULES or module == "app.db.session":
            return True
        tb = tb.tb_next
    return False


def _driver_error_unavailable(error: BaseException | None) -> bool:
    if isinstance(error, psycopg.Error):
        if isinstance(error, psycopg.errors.QueryCanceled):
            return True
        if error.sqlstate is None:  # client side: cannot connect, timed out, connection lost
            return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)
        return error.sqlstate[:2] in _PG_UNAVAILABLE_CLASSES
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        return code is not None and code & 0xFF in _SQLITE_UNAVAILABLE_CODES
    return isinstance(error, TimeoutError)


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database is out of reach for now (not a bug, not bad data)."""
    if isinstance(exc, DatabaseUnavailable | sa_exc.TimeoutError):  # pool checkout timed out
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or _driver_error_unavailable(exc.orig)
    if isinstance(exc, psycopg.Error | sqlite3.Error):
        return _driver_error_unavailable(exc)
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError out of the driver or the pool
        return _raised_by_database_code(exc)
    return False


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if not database_unavailable(exc):
        raise exc  # a bug or bad data: the middleware's 500 (and its log, with the trace)
    cause = getattr(exc, "orig", None) or exc
    log.warning(
        "database unavailable",
        extra={
            "path": request.url.path,
            "error": type(exc).__name__,
            "cause": f"{type(cause).__name__}: {cause}"[:300],
        },
    )
    return error_response(
        503,
        "database_unavailable",
        "the database is not available right now; try again shortly",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for database_error in (
        sa_exc.DBAPIError,
        sa_exc.TimeoutError,
        DatabaseUnavailable,
        psycopg.Error,
        sqlite3.Error,
        TimeoutError,
    ):
        app.add_exception_handler(database_error, _database_error)
