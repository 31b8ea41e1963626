"""The outermost layer of the app: request ids, metrics, access log, body size limit,
security headers, and the last-resort error boundary (an unexpected error is a JSON 500,
still counted, its exception text only in the log).

Security headers go on every answer, errors included (`SecurityHeaders`): nosniff,
no-referrer, X-Frame-Options DENY, a CSP for a JSON API (`default-src 'none';
frame-ancestors 'none'`) unless the app set its own (the docs page does), and HSTS on
requests that came over TLS (scope scheme "https": uvicorn sets it from a trusted
proxy's X-Forwarded-Proto) or always when configured.

Written as plain ASGI (not BaseHTTPMiddleware): it sits on every request, the
cached catalog read included, and must cost little.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.domain.quotes import client_var
from app.observability import metrics
from app.observability.logging import request_id_var

access_log = logging.getLogger("shop.access")
error_log = logging.getLogger("shop.error")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_UNMATCHED_ROUTE = "<unmatched>"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


API_CSP = "default-src 'none'; frame-ancestors 'none'"


@dataclass(frozen=True)
class SecurityHeaders:
    hsts_always: bool = False
    hsts_max_age_seconds: int = 365 * 24 * 3600

    def add_to(self, scope: Scope, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        present = {name.lower() for name, _ in headers}
        extra = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"content-security-policy", API_CSP.encode()),
        ]
        if self.hsts_always or scope.get("scheme") == "https":
            extra.append(
                (b"strict-transport-security", f"max-age={self.hsts_max_age_seconds}".encode())
            )
        return [*headers, *((k, v) for k, v in extra if k not in present)]


def _error_body(code: str, message: str, request_id: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "request_id": request_id}})


class ObservabilityMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        security_headers: SecurityHeaders | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.security_headers = security_headers or SecurityHeaders()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        headers = dict(scope["headers"])
        supplied_id = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = supplied_id if _VALID_REQUEST_ID.match(supplied_id) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        peer = scope.get("client")
        client_token = client_var.set(peer[0] if peer else None)
        started = time.perf_counter()
        method: str = scope["method"]
        response_started = False
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal response_started, status
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = self.security_headers.add_to(
                    scope, [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                )
            await send(message)

        async def send_error(code: int, error: str, text: str) -> None:
            body = _error_body(error, text, request_id)
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": code,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send_with_id({"type": "http.response.body", "body": body})

        metrics.http_requests_in_progress.inc()
        try:
            body_receive = await self._limit_body(method, headers, receive)
            if isinstance(body_receive, tuple):
                await send_error(*body_receive)
            else:
                await self.app(scope, body_receive, send_with_id)
        except Exception:
            error_log.exception("unhandled error", extra={"path": scope["path"]})
            if not response_started:
                await send_error(500, "internal_error", "internal server error")
            status = 500
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or _UNMATCHED_ROUTE
            labels = (template, method, str(status))
            metrics.http_requests_total.labels(*labels).inc()
            metrics.http_request_duration_seconds.labels(*labels).observe(elapsed)
            metrics.http_requests_in_progress.dec()
            if access_log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                access_log.info(
                    "request",
                    extra={
                        "method": method,
                        "path": scope["path"],
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "client": client[0] if client else None,
                    },
                )
            request_id_var.reset(token)
            client_var.reset(client_token)

    async def _limit_body(
        self, method: str, headers: dict[bytes, bytes], receive: Receive
    ) -> Receive | tuple[int, str, str]:
        """The receive callable to give the app, or (status, code, message) to refuse with."""
        if method not in _BODY_METHODS:
            return receive
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                return 400, "bad_request", "Content-Length is not a number"
            if int(declared) > self.max_body_bytes:
                return 413, "body_too_large", f"request body over {self.max_body_bytes} bytes"
            return receive
        # No declared length (chunked): read it all, within the limit, then replay it.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return receive
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return 413, "body_too_large", f"request body over {self.max_body_bytes} bytes"
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replay: list[dict[str, Any]] = [{"type": "http.request", "body": b"".join(chunks)}]

        async def replay_receive() -> Message:
            return replay.pop() if replay else await receive()

        return replay_receive
