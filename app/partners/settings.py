"""Configuration of the shop's partner clients; environment prefix PARTNERS_.

Nested values use a double underscore, e.g. PARTNERS_FRAUD__BLOCK_SCORE=80.
Defaults point at the sandboxes on this machine (ports from the topology).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

import topology
from app.partners.interfaces import PaymentChannel


def _sandbox_url(port_name: str) -> str:
    """The URL of a partner sandbox on this machine, on the topology's named port."""
    return f"http://127.0.0.1:{topology.load().port(port_name)}"


_DEFAULT_ROUTES = {
    PaymentChannel.CARD: ["card-primary", "card-secondary"],
    PaymentChannel.WALLET: ["wallet"],
    PaymentChannel.CRYPTO: ["crypto"],
}


class FraudSettings(BaseModel):
    """Rule weights and thresholds of the risk engine (points add up to a score)."""

    challenge_score: int = Field(default=40, ge=1)
    block_score: int = Field(default=80, ge=1)

    velocity_window_minutes: int = Field(default=60, ge=1)
    max_orders_per_account: int = Field(default=5, ge=1)  # in the window, before this one
    max_orders_per_payment_token: int = Field(default=3, ge=1)
    max_orders_per_ip: int = Field(default=8, ge=1)
    velocity_points: int = 45  # per dimension over its limit

    usual_amount_min_orders: int = Field(default=3, ge=1)  # history needed to know "usual"
    usual_amount_factor: float = Field(default=5.0, gt=1)  # amount > factor x median
    unusual_amount_points: int = 40

    country_mismatch_points: int = 25

    new_account_days: int = Field(default=7, ge=0)
    large_order_minor: int = Field(default=50_000, ge=1)  # 500.00 in the order's currency
    new_account_large_order_points: int = 40


class PartnersSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PARTNERS_", env_nested_delimiter="__", extra="ignore"
    )

    # --- payments: one base URL, one path prefix per provider (the sandbox's layout)
    payments_base_url: str = Field(default_factory=lambda: _sandbox_url("payments"))
    payment_routes: dict[PaymentChannel, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in _DEFAULT_ROUTES.items()}
    )  # channel -> providers in failover order
    payments_api_key: SecretStr | None = None
    payments_webhook_secret: SecretStr | None = None
    payment_timeout_seconds: float = Field(default=3.0, gt=0)
    payment_attempts_per_provider: int = Field(default=3, ge=1)
    # Asking a provider whether it charged, after its answer was lost: kept short.
    payment_lookup_attempts: int = Field(default=2, ge=1)
    retry_backoff_initial_seconds: float = Field(default=0.1, ge=0)
    retry_backoff_max_seconds: float = Field(default=1.0, ge=0)
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_reset_seconds: float = Field(default=30.0, gt=0)

    # --- couriers
    couriers_base_url: str = Field(default_factory=lambda: _sandbox_url("couriers"))
    couriers: list[str] = Field(default_factory=lambda: ["swiftpost", "globex"])
    couriers_webhook_secret: SecretStr | None = None
    courier_timeout_seconds: float = Field(default=5.0, gt=0)
    courier_attempts: int = Field(default=3, ge=1)

    webhook_tolerance_seconds: int = Field(default=300, ge=1)

    # --- TLS to the partners (payments, couriers, SMTP STARTTLS): a CA bundle that verifies
    # their certificates; unset: the system's trust store (public CAs, plus any CA the
    # host was told to trust, as the lab's hosts are).
    ca_file: Path | None = None

    # --- one time budget per checkout for all its partner calls (app/partners/deadline.py);
    # well under the shop's 20 s graceful timeout and the edge's 30 s server timeout.
    checkout_deadline_seconds: float = Field(default=12.0, gt=0)

    # --- mail
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default_factory=lambda: topology.load().port("smtp"))
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    mail_from: str = "orders@shop.example"
    mail_daily_cap: int = Field(default=500, ge=1)  # the provider's daily sending limit
    mail_per_minute: int = Field(default=30, ge=1)
    mail_quota_timezone: str = "UTC"  # the provider's day boundary
    outbox_batch_size: int = Field(default=20, ge=1)  # messages per round, leased one by one
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    # Per message, taken just before its send: must outlast one SMTP dialogue
    # (a few steps of up to smtp_timeout_seconds each), not a whole batch.
    outbox_lease_seconds: float = Field(default=60.0, gt=0)
    outbox_backoff_initial_seconds: float = Field(default=5.0, gt=0)
    outbox_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    outbox_max_attempts: int = Field(default=25, ge=1)  # then parked as dead, never dropped

    # --- fraud
    fraud: FraudSettings = Field(default_factory=FraudSettings)


def trusted_ca_file(settings: PartnersSettings) -> str | None:
    """The CA bundle partner certificates are verified against: PARTNERS_CA_FILE, else the
    system's bundle (None where the system keeps none at a file path)."""
    if settings.ca_file is not None:
        return str(settings.ca_file)
    return ssl.get_default_verify_paths().cafile


def tls_verification(settings: PartnersSettings) -> ssl.SSLContext:
    """How every partner client verifies the partner's certificate (and name)."""
    return ssl.create_default_context(cafile=trusted_ca_file(settings))


def insecure_partner_settings(settings: PartnersSettings) -> list[str]:
    """What production must not run with: card or customer data in clear (http://, mail
    without STARTTLS), or a partner reached without its credentials."""
    named = {
        "PARTNERS_PAYMENTS_BASE_URL": settings.payments_base_url,
        "PARTNERS_COURIERS_BASE_URL": settings.couriers_base_url,
    }
    problems = [f"{name} is http://" for name, url in named.items() if url.startswith("http://")]
    if not settings.smtp_starttls:
        problems.append("PARTNERS_SMTP_STARTTLS is false")
    if settings.payments_api_key is None:
        problems.append("PARTNERS_PAYMENTS_API_KEY is not set")
    if settings.smtp_username is None or settings.smtp_password is None:
        problems.append("PARTNERS_SMTP_USERNAME and PARTNERS_SMTP_PASSWORD are not both set")
    return problems
