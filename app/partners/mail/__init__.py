"""Order mail: SMTP transport, sending quota, persistent outbox and its worker."""

from app.partners.mail.outbox import (
    Backlog,
    InMemoryOutboxStore,
    LeaseLost,
    OutboxEntry,
    OutboxState,
    OutboxStore,
)
from app.partners.mail.quota import InMemoryQuotaStore, QuotaStore, SendingQuota
from app.partners.mail.transport import MailDeliveryError, SmtpMailTransport, build_mail_transport
from app.partners.mail.worker import OutboxWorker, build_outbox_worker

__all__ = [
    "Backlog",
    "InMemoryOutboxStore",
    "InMemoryQuotaStore",
    "LeaseLost",
    "MailDeliveryError",
    "OutboxEntry",
    "OutboxState",
    "OutboxStore",
    "OutboxWorker",
    "QuotaStore",
    "SendingQuota",
    "SmtpMailTransport",
    "build_mail_transport",
    "build_outbox_worker",
]
