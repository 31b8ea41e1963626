"""/openapi.json: FastAPI's document, completed with what the routes cannot say themselves.

- Input FastAPI refuses is a 422 in the shop's error body (`ErrorOut`, app/errors.py), not
  FastAPI's `HTTPValidationError`: each such response is described as it is sent.
- Any request of a method with a body passes the middleware first
  (app/observability/middleware.py): 400 for an unreadable Content-Length or body, 413 for
  a body over MAX_BODY_BYTES. Every POST, PUT, PATCH and DELETE can answer those.
- Limits that are settings, not constants (MAX_LINE_QUANTITY), are stated with the value
  this process enforces.

Why here: these are facts of the web edge and of the deployment, true of every operation
they apply to; listing them route by route would repeat them and drift.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.api.responses import BAD_REQUEST, INVALID, TOO_LARGE, ErrorOut
from app.settings import Settings

BODY_METHODS = ("post", "put", "patch", "delete")
_FASTAPI_VALIDATION = "#/components/schemas/HTTPValidationError"
_ERROR_REF = f"#/components/schemas/{ErrorOut.__name__}"


def _error_response(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": entry["description"],
        "content": {"application/json": {"schema": {"$ref": _ERROR_REF}}},
    }


def _is_fastapi_validation(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref") == _FASTAPI_VALIDATION


def _complete_operation(method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if "422" in responses and _is_fastapi_validation(responses["422"]):
        responses["422"] = _error_response(INVALID[422])
    if method in BODY_METHODS:
        responses.setdefault("400", _error_response(BAD_REQUEST[400]))
        responses.setdefault("413", _error_response(TOO_LARGE[413]))


def _state_settings(document: dict[str, Any], settings: Settings) -> None:
    schemas = document.get("components", {}).get("schemas", {})
    quantity = schemas.get("CartQuantityIn", {}).get("properties", {}).get("quantity")
    if quantity is not None:
        quantity["maximum"] = settings.max_line_quantity
        quantity["description"] = (
            f"units of this SKU in the cart, at most {settings.max_line_quantity} (per order)"
        )


def _drop_unused_schemas(document: dict[str, Any]) -> None:
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):  # the first refers to the second
        if name in schemas:
            rest = {key: value for key, value in schemas.items() if key != name}
            text = json.dumps(
                {**document, "components": {**document["components"], "schemas": rest}}
            )
            if f'"#/components/schemas/{name}"' not in text:
                del schemas[name]


def build_document(app: FastAPI, settings: Settings) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    for path_item in document.get("paths", {}).values():
        for method, operation in path_item.items():
            _complete_operation(method, operation)
    _state_settings(document, settings)
    _drop_unused_schemas(document)
    return document


def install(app: FastAPI, settings: Settings) -> None:
    """Serve `build_document` as the app's schema (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_document(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
