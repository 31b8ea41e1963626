"""The error answers of the API as /openapi.json documents them, defined once.

Every refusal has one body, `{"error": {"code", "message", "request_id", ...details}}`
(app/errors.py renders it; `ErrorOut` is its schema). The dicts here are FastAPI
`responses=` entries; routers list the ones every route of theirs can answer, a route
adds its own with `errors(...)`. Which status a domain refusal becomes is decided in
app/errors.py (`HTTP_STATUS`); this module only says, per operation, which ones occur.

What any request of a method with a body can meet at the edge, whatever the route
(400 unreadable body or Content-Length, 413 body over the limit: the middleware), and
the 422 of input FastAPI refuses are added by app/api/openapi.py, operation by operation
as they apply, rather than route by route.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    """`code` is stable (what clients key on); further fields name what was refused."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="machine-readable reason, e.g. not_found, out_of_stock")
    message: str = Field(description="for people")
    request_id: str = Field(description="the X-Request-Id of this request (also in the logs)")


class ErrorOut(BaseModel):
    error: ErrorDetail


Responses = dict[int | str, dict[str, Any]]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


BAD_REQUEST: Responses = {400: _error("the body is not readable JSON, or Content-Length is bad")}
UNAUTHORIZED: Responses = {
    401: _error("no, an invalid, an expired or a revoked access token (unauthorized)")
}
ADMIN_ONLY: Responses = {
    403: _error("not an admin (forbidden), or an admin without TOTP (admin_mfa_required)")
}
NOT_FOUND: Responses = {404: _error("no such resource (not_found; the detail names it)")}
TOO_LARGE: Responses = {413: _error("request body over the limit (body_too_large)")}
INVALID: Responses = {
    422: _error(
        "the request does not match this document (invalid_request; `fields` lists each problem)"
    )
}
THROTTLED: Responses = {
    429: _error("too many attempts (too_many_attempts); Retry-After says when to try again")
}
DATABASE_UNAVAILABLE: Responses = {
    503: _error(
        "the database is not available right now (database_unavailable); Retry-After says "
        "when to try again"
    )
}

# What every route of a router that reads the database can answer. (A 422 for input that
# does not match the document is added by app/api/openapi.py wherever FastAPI validates.)
STANDARD: Responses = {**DATABASE_UNAVAILABLE}
# Routes that need a signed-in user (`CurrentUser`), or take one when given (`OptionalUser`).
SIGNED_IN: Responses = {**STANDARD, **UNAUTHORIZED}
# The back office: a signed-in admin with TOTP.
BACK_OFFICE: Responses = {**SIGNED_IN, **ADMIN_ONLY}


def error(status: int, description: str) -> Responses:
    """One status with its own description (the body is always `ErrorOut`)."""
    return {status: _error(description)}


def errors(*parts: Responses) -> Responses:
    """The statuses of `parts` together (a later part's description wins)."""
    merged: Responses = {}
    for part in parts:
        merged.update(part)
    return merged


# `openapi_extra` of operations that take a token when one is sent but also serve guests
# (the cart, quotes): FastAPI lists the bearer scheme, this adds "or none" to it.
OPTIONAL_LOGIN: dict[str, Any] = {"security": [{}]}
