"""Errors as the API speaks them: `{"error": {"code", "message", ...}}` with a fitting status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.observability.logging import request_id_var

log = logging.getLogger("shop.error")


class ApiError(Exception):
    """A refusal the client can act on. Domain code raises the subclasses below."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(ApiError):
    status, code = 404, "not_found"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class StepUpRequired(Forbidden):
    """The risk check asks for the customer's current TOTP code before this payment."""

    code = "step_up_required"


class StepUpFailed(Forbidden):
    code = "step_up_failed"


class StepUpUnavailable(Forbidden):
    code = "step_up_unavailable"


class Conflict(ApiError):
    status, code = 409, "conflict"


class OutOfStock(Conflict):
    code = "out_of_stock"


class IllegalTransition(Conflict):
    code = "illegal_transition"


class InvalidRequest(ApiError):
    status, code = 422, "invalid_request"


class TooManyAttempts(ApiError):
    status, code = 429, "too_many_attempts"


class PaymentFailed(ApiError):
    status, code = 402, "payment_failed"


class ShipmentRefused(ApiError):
    """The courier refused the shipment as asked (address, customs); `problems` names why."""

    status, code = 422, "shipment_rejected"


class UpstreamUnavailable(ApiError):
    status, code = 503, "upstream_unavailable"


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


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = exc.details.pop("headers", None)
    return error_response(exc.status, exc.code, exc.message, headers=headers, details=exc.details)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _clean_validation_errors(list(exc.errors()))
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(p for p in first["loc"] if p not in ("body",)) or "request"
    return error_response(
        422, "invalid_request", f"{where}: {first['msg']}", details={"fields": errors}
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "body_too_large",
    }.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "request refused"
    return error_response(exc.status_code, code, message, headers=dict(exc.headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
