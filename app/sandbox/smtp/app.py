"""The SMTP sink's HTTP admin API.

GET    /messages            what was received (?to=address to filter)
GET    /messages/{id}       one message, with its text body and raw source
DELETE /messages            forget everything received
GET|PUT|DELETE /admin/faults[/smtp], GET /metrics, GET /healthz
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException

from app.sandbox.faults import FaultBoard
from app.sandbox.http import sandbox_app
from app.sandbox.smtp.sink import MailSink


def create_admin_app(sink: MailSink, board: FaultBoard) -> FastAPI:
    """The admin app; `board` must be the one the SMTP handler applies."""
    app = sandbox_app("SMTP sink admin", board)
    app.state.sink = sink
    app.include_router(messages_router(sink))
    return app


def messages_router(sink: MailSink) -> APIRouter:
    router = APIRouter(prefix="/messages", tags=["mail"])

    @router.get("")
    async def list_messages(to: str | None = None) -> dict[str, Any]:
        items = [
            m.summary()
            for m in sink.messages
            if to is None or to.lower() in (r.lower() for r in m.rcpt_tos)
        ]
        return {"items": items, "total": len(items)}

    @router.get("/{message_id}")
    async def get_message(message_id: int) -> dict[str, Any]:
        for message in sink.messages:
            if message.id == message_id:
                return {
                    **message.summary(),
                    "body_text": message.body_text(),
                    "raw": message.raw.decode("utf-8", "replace"),
                }
        raise HTTPException(404, f"no message {message_id}")

    @router.delete("")
    async def clear() -> dict[str, int]:
        return {"deleted": sink.clear()}

    return router
