"""Where the sandboxes listen and whom they call back; env prefix SANDBOX_.

Ports default to the named ports of topology/topology.yml, so the lab, the
load tests and `python -m app.sandbox` agree without repeating numbers.
Webhook secrets come from the environment; when unset, a random one is made
per run (and webhooks are only sent when a target URL is set).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

import topology


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
