"""An SMTP server that keeps what it receives (in memory, and in a maildir if asked).

Recipients at an `.invalid` domain are refused with 550 (a permanent failure).
It stands in for the mail provider: the shop's outbox delivers to it over real
SMTP. Its fault knobs (service "smtp") act on each message at the DATA stage:
outage answers 421, error 451 (both temporary, so the sender retries), a
timeout holds the answer back for `timeout_ms`, latency slows every message.
With a login, mail is taken only after AUTH (PLAIN or LOGIN, over TLS only).
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import mailbox
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from app.sandbox import metrics
from app.sandbox.faults import FaultBoard, FaultTriggered
from app.sandbox.metrics import Outcome

SERVICE = "smtp"
_REPLIES = {
    Outcome.OUTAGE: "421 4.3.2 Service not available (injected outage)",
    Outcome.ERROR: "451 4.3.0 Temporary failure (injected error)",
    Outcome.TIMEOUT: "451 4.4.2 Timed out (injected timeout)",
}


@dataclass(frozen=True)
class ReceivedMessage:
    id: int
    mail_from: str
    rcpt_tos: tuple[str, ...]
    subject: str
    message_id: str
    received_at: datetime
    raw: bytes

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "mail_from": self.mail_from,
            "rcpt_tos": list(self.rcpt_tos),
            "subject": self.subject,
            "message_id": self.message_id,
            "received_at": self.received_at.isoformat(),
        }

    def body_text(self) -> str:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        part = parsed.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
        return part.get_content() if part is not None else ""


class MailSink:
    """What the sink received; the aiosmtpd handler appends, the admin API reads."""

    def __init__(self, maildir: Path | None = None) -> None:
        self.messages: list[ReceivedMessage] = []
        self._ids = itertools.count(1)
        self._maildir = mailbox.Maildir(maildir, create=True) if maildir else None

    def keep(self, envelope: Envelope) -> ReceivedMessage:
        raw = envelope.original_content or b""
        parsed = message_from_bytes(raw, policy=policy.default)
        received = ReceivedMessage(
            id=next(self._ids),
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            subject=str(parsed.get("Subject", "")),
            message_id=str(parsed.get("Message-ID", "")),
            received_at=datetime.now(UTC),
            raw=raw,
        )
        self.messages.append(received)
        if self._maildir is not None:
            self._maildir.add(raw)
        return received

    def clear(self) -> int:
        count = len(self.messages)
        self.messages.clear()
        return count


class SinkHandler:
    """aiosmtpd handler: apply the fault knobs, then keep the message."""

    def __init__(self, sink: MailSink, board: FaultBoard) -> None:
        self.sink = sink
        self.board = board

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        # RFC 2606 reserves .invalid: a permanent refusal to test senders against.
        if address.lower().rstrip(">").endswith(".invalid"):
            return "550 5.1.1 Recipient address rejected: domain does not exist"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        try:
            await self.board.inject(SERVICE)
        except FaultTriggered as fault:
            return _REPLIES[fault.outcome]
        self.sink.keep(envelope)
        metrics.record(SERVICE, Outcome.OK)
        return "250 2.0.0 Message accepted for delivery"


class LoginChecker:
    """aiosmtpd authenticator: one username and password, compared in constant time."""

    def __init__(self, username: str, password: str) -> None:
        self._expected = (username.encode(), password.encode())

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login_ok = hmac.compare_digest(auth_data.login, self._expected[0])
        password_ok = hmac.compare_digest(auth_data.password, self._expected[1])
        if login_ok and password_ok:
            return AuthResult(success=True, auth_data=auth_data)
        # handled=False: aiosmtpd answers 535 itself (True would leave the client waiting)
        return AuthResult(success=False, handled=False)


async def start_smtp_server(
    handler: SinkHandler,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    tls_context: ssl.SSLContext | None = None,
    login: tuple[str, str] | None = None,
) -> asyncio.Server:
    """Listen for SMTP in the running loop; `server.sockets[0].getsockname()[1]` is the port.

    With `tls_context`, STARTTLS is offered and required before mail is accepted; with
    `login` (username, password), AUTH is required too."""
    if login is not None and tls_context is None:
        raise ValueError("an SMTP login is only taken over TLS: give tls_context too")
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="sandbox-smtp",
            ident="shop sandbox SMTP sink",
            data_size_limit=10 * 1024 * 1024,
            enable_SMTPUTF8=True,
            tls_context=tls_context,
            require_starttls=tls_context is not None,
            authenticator=LoginChecker(*login) if login else None,
            auth_required=login is not None,
            loop=loop,
        ),
        host=host,
        port=port,
    )
