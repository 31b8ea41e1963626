"""MailTransport over SMTP (aiosmtplib)."""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from app.partners.interfaces import MailMessage
from app.partners.settings import PartnersSettings, tls_verification


class MailDeliveryError(Exception):
    """The server did not take the message. `permanent` (5xx): retrying will not help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def build_email(message: MailMessage, sender: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.to
    email["Subject"] = message.subject
    email["Date"] = formatdate(localtime=False, usegmt=True)
    for name, value in message.headers.items():
        email[name] = value
    if "Message-ID" not in email:
        email["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    email["X-Mail-Kind"] = message.kind
    email.set_content(message.body_text)
    return email


class SmtpMailTransport:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout_seconds: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self._username = username
        self._password = password
        self._starttls = starttls
        self._timeout = timeout_seconds
        self._tls_context = tls_context

    async def send(self, message: MailMessage) -> None:
        email = build_email(message, self.sender)
        try:
            await aiosmtplib.send(
                email,
                hostname=self.host,
                port=self.port,
                username=self._username,
                password=self._password,
                start_tls=self._starttls,
                tls_context=self._tls_context if self._starttls else None,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refusal.code for refusal in exc.recipients]
            permanent = bool(codes) and all(500 <= code < 600 for code in codes)
            raise MailDeliveryError(f"recipients refused: {exc}", permanent=permanent) from exc
        except aiosmtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.code < 600
            raise MailDeliveryError(f"SMTP {exc.code} {exc.message}", permanent=permanent) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailDeliveryError(f"{type(exc).__name__}: {exc}", permanent=False) from exc


def build_mail_transport(settings: PartnersSettings) -> SmtpMailTransport:
    return SmtpMailTransport(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.mail_from,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.smtp_starttls,
        timeout_seconds=settings.smtp_timeout_seconds,
        tls_context=tls_verification(settings),
    )
