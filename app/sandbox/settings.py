"""Where the sandboxes listen and whom they call back; env prefix SANDBOX_.

Ports default to the named ports of topology/topology.yml, so the lab, the
load tests and `python -m app.sandbox` agree without repeating numbers.
Webhook secrets come from the environment; when unset, a random one is made
per run (and webhooks are only sent when a target URL is set). Credentials
(the payment API key, the SMTP login) are checked only when set, as the real
providers check theirs; the lab sets them, unit tests may leave them out.
"""

from __future__ import annotations

import secrets
import ssl
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

import topology
from app.sandbox.tls import provider_server_context


def _port(name: str) -> int:
    return topology.load().port(name)


class SandboxSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SANDBOX_", extra="ignore")

    host: str = "127.0.0.1"
    payments_port: int = Field(default_factory=lambda: _port("payments"))
    couriers_port: int = Field(default_factory=lambda: _port("couriers"))
    smtp_port: int = Field(default_factory=lambda: _port("smtp"))
    admin_port: int = Field(default_factory=lambda: _port("partners_metrics"))

    payments_webhook_url: str | None = None
    payments_webhook_secret: SecretStr = Field(
        default_factory=lambda: SecretStr(secrets.token_urlsafe(32))
    )
    couriers_webhook_url: str | None = None
    couriers_webhook_secret: SecretStr = Field(
        default_factory=lambda: SecretStr(secrets.token_urlsafe(32))
    )

    origin_country: str = Field(default="UA", pattern=r"^[A-Z]{2}$")
    tracking_step_seconds: float = Field(default=60.0, ge=0)  # 0: events advance only on demand
    smtp_maildir: Path | None = None
    # TLS (both or neither): payments and couriers serve HTTPS, SMTP offers STARTTLS and
    # requires it before AUTH/MAIL. The admin port (metrics, fault knobs) stays HTTP: it
    # faces the management network only.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # Set: every provider API call must carry `Authorization: Bearer <key>` (401 otherwise).
    payments_api_key: SecretStr | None = None
    # Set (both or neither): SMTP takes mail only after AUTH with this login (over TLS).
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None

    @model_validator(mode="after")
    def _pairs(self) -> SandboxSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError(
                "SANDBOX_TLS_CERT_FILE and SANDBOX_TLS_KEY_FILE go together: set both or neither"
            )
        if (self.smtp_username is None) != (self.smtp_password is None):
            raise ValueError(
                "SANDBOX_SMTP_USERNAME and SANDBOX_SMTP_PASSWORD go together: set both or neither"
            )
        if self.smtp_username is not None and self.tls_cert_file is None:
            raise ValueError(
                "SANDBOX_SMTP_USERNAME needs SANDBOX_TLS_CERT_FILE: a login is only taken over TLS"
            )
        return self

    def payments_key(self) -> str | None:
        return self.payments_api_key.get_secret_value() if self.payments_api_key else None

    def smtp_login(self) -> tuple[str, str] | None:
        if self.smtp_username is None or self.smtp_password is None:
            return None
        return self.smtp_username, self.smtp_password.get_secret_value()

    def tls_context(self) -> ssl.SSLContext | None:
        if self.tls_cert_file is None or self.tls_key_file is None:
            return None
        return provider_server_context(self.tls_cert_file, self.tls_key_file)
