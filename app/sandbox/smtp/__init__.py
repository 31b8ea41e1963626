"""SMTP sink sandbox: an SMTP server that keeps what it receives, with an HTTP admin API."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from app.sandbox.faults import FaultBoard
from app.sandbox.smtp.app import create_admin_app
from app.sandbox.smtp.sink import SERVICE, MailSink, ReceivedMessage, SinkHandler, start_smtp_server

__all__ = [
    "SERVICE",
    "MailSink",
    "ReceivedMessage",
    "SmtpSandbox",
    "create_smtp_sandbox",
    "start_smtp_server",
]


@dataclass
class SmtpSandbox:
    sink: MailSink
    board: FaultBoard
    handler: SinkHandler
    admin_app: FastAPI

    async def listen(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_context: ssl.SSLContext | None = None,
        login: tuple[str, str] | None = None,
    ) -> asyncio.Server:
        return await start_smtp_server(
            self.handler, host, port, tls_context=tls_context, login=login
        )


def create_smtp_sandbox(
    maildir: Path | None = None, *, faults: FaultBoard | None = None
) -> SmtpSandbox:
    """The sink, its fault knobs, the SMTP handler and the admin app, wired together.

    `faults` must know the service "smtp" (the all-in-one runner passes one board).
    """
    sink = MailSink(maildir)
    board = faults or FaultBoard([SERVICE])
    return SmtpSandbox(sink, board, SinkHandler(sink, board), create_admin_app(sink, board))
