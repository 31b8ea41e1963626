"""Settings of the shop, read from the environment (12-factor).

Names are the plain environment variable names (DATABASE_URL, REDIS_URL, PORT, ...).
Nothing here has a default that is a real secret: the shop holds no signing keys
(access tokens are random and stored hashed), and partner credentials come from
the environment of the deployment.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_PATH = Path("var/shop.db")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    database_url: str = f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH}"
    redis_url: str | None = None
    bind_host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    web_concurrency: int = Field(default=2, ge=1, le=64)
    # Serve HTTPS with this certificate and key (PEM files; both or neither): the load
    # balancer's hop to the app servers is encrypted too (card-flow traffic, PCI DSS).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Migrate the schema when the app starts (dev and tests). Deploys set it to
    # false and run `python -m app.db migrate` once instead.
    auto_migrate: bool = True

    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=5, ge=0)
    # Bounds on every wait for the database, so that an unreachable or stalled database
    # is a quick 503 (app/errors.py), well inside GRACEFUL_TIMEOUT, not a hung request.
    # PostgreSQL: libpq connect_timeout (whole seconds, at least 2).
    db_connect_timeout_seconds: int = Field(default=3, ge=2, le=60)
    # PostgreSQL: statement_timeout (lock waits included); the client gives up on a server
    # that does not answer at all one second later. SQLite: the busy timeout (how long a
    # statement waits for another process's write lock).
    db_statement_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Waiting for a free pooled connection (and, on SQLite, for the process's write turn).
    db_pool_timeout_seconds: float = Field(default=3.0, gt=0, le=60)

    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    origin_country: str = Field(default="UA", pattern=r"^[A-Z]{2}$")
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_line_quantity: int = Field(default=100, ge=1)

    # Catalog cache: in-process TTL by default; shared Redis when REDIS_URL is set.
    cache_ttl_seconds: float = Field(default=5.0, gt=0)
    redis_cache_ttl_seconds: float = Field(default=300.0, gt=0)
    cache_max_entries: int = Field(default=20_000, ge=1)

    # argon2id cost (defaults: RFC 9106 low-memory profile, as argon2-cffi ships it).
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_memory_kib: int = Field(default=65_536, ge=8 * 1024)
    password_hash_parallelism: int = Field(default=4, ge=1)

    session_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    mfa_token_ttl_seconds: int = Field(default=300, ge=30)
    # "production" refuses to start without the secrets below.
    environment: Literal["development", "production"] = "development"
    # Per (account, client): after this many failed attempts each next one from that client
    # waits LOGIN_BACKOFF_INITIAL_SECONDS x 2^k (k = 0, 1, ...), at most
    # LOGIN_LOCKOUT_SECONDS. Also the TOTP step and the checkout step-up. The first delay
    # outlasts any burst of guesses sent at once (a 1 s delay let a slow burst through).
    login_max_failures: int = Field(default=5, ge=1)
    login_backoff_initial_seconds: int = Field(default=30, ge=1)
    login_lockout_seconds: int = Field(default=15 * 60, ge=1)
    ip_max_failures: int = Field(default=50, ge=1)  # per client IP per window
    ip_failure_window_seconds: int = Field(default=15 * 60, ge=1)
    # Registrations per client IP per window (argon2 hashing is the expensive part).
    register_max_per_ip: int = Field(default=300, ge=1)
    register_window_seconds: int = Field(default=300, ge=1)
    # argon2 hashes computed at once per process; further ones wait their turn.
    password_hash_concurrency: int = Field(default=2, ge=1, le=64)
    # Fernet key (urlsafe base64 of 32 bytes) encrypting TOTP secrets at rest; required
    # when ENVIRONMENT=production. Generate: python -c "from cryptography.fernet import
    # Fernet; print(Fernet.generate_key().decode())"
    totp_encryption_key: SecretStr | None = None

    bestsellers_refresh_seconds: float = Field(default=30.0, gt=0)
    # Where shipping quotes, labels and tracking come from: the courier APIs of
    # app/partners (PARTNERS_COURIERS_BASE_URL), or the shop's own rate table
    # (no carrier, no tracking feed) as the explicit fallback.
    courier_backend: Literal["partners", "rate_table"] = "partners"
    # Run the mail outbox worker in every serving process (safe: rows are leased).
    mail_worker_enabled: bool = True
    # The reconciler settles orders a checkout or refund left unsettled (app/domain/reconciler).
    reconciler_enabled: bool = True
    # Older than this an unsettled order is reconciled: well above the checkout deadline.
    reconcile_after_seconds: float = Field(default=120.0, gt=0)
    reconcile_interval_seconds: float = Field(default=30.0, gt=0)
    # --- the public surface -------------------------------------------------------
    # ENVIRONMENT (above) production also turns off what only developers need:
    # API_DOCS_ENABLED unset means /docs and /openapi.json on in development, off in production.
    api_docs_enabled: bool | None = None
    # HSTS: sent on requests that came over TLS (the scheme uvicorn takes from a trusted
    # proxy's X-Forwarded-Proto, FORWARDED_ALLOW_IPS), or on every answer when HSTS_ALWAYS.
    hsts_always: bool = False
    hsts_max_age_seconds: int = Field(default=365 * 24 * 3600, ge=0)

    # /readyz: one database check per process shares its answer this long.
    readiness_cache_seconds: float = Field(default=1.0, ge=0, le=30)
    readiness_timeout_seconds: float = Field(default=2.0, gt=0, le=30)

    # Anonymous shipping quotes (POST /api/checkout/quote): courier answers are cached by
    # destination, postal code prefix and weight band; each client IP has a token bucket
    # per worker process (QUOTE_RATE_BURST quotes at once, refilled QUOTE_RATE_PER_MINUTE).
    quote_cache_ttl_seconds: float = Field(default=60.0, ge=0)
    quote_weight_band_grams: int = Field(default=500, ge=1)
    quote_postal_prefix_chars: int = Field(default=0, ge=0, le=20)  # 0: postal code not keyed
    quote_rate_burst: int = Field(default=30, ge=1)
    quote_rate_per_minute: float = Field(default=30.0, gt=0)

    build_version: str = "0.1.0"
    build_revision: str = "unknown"

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        """Accept the common spellings and map them to the async drivers the app uses."""
        for plain, async_url in (
            ("postgresql://", "postgresql+psycopg://"),
            ("postgres://", "postgresql+psycopg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if url.startswith(plain):
                return async_url + url[len(plain) :]
        if not url.startswith(("postgresql+psycopg://", "sqlite+aiosqlite://")):
            raise ValueError(
                "DATABASE_URL must be sqlite+aiosqlite://... or postgresql+psycopg://..."
            )
        return url

    @property
    def docs_enabled(self) -> bool:
        if self.api_docs_enabled is not None:
            return self.api_docs_enabled
        return self.environment == "development"

    @field_validator("totp_encryption_key")
    @classmethod
    def _fernet_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is None or not key.get_secret_value():
            return None
        try:
            Fernet(key.get_secret_value().encode())
        except (ValueError, TypeError):
            raise ValueError(
                "TOTP_ENCRYPTION_KEY must be a Fernet key (urlsafe base64 of 32 bytes)"
            ) from None
        return key

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("TLS_CERT_FILE and TLS_KEY_FILE go together: set both or neither")
        for name, path in (
            ("TLS_CERT_FILE", self.tls_cert_file),
            ("TLS_KEY_FILE", self.tls_key_file),
        ):
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: {path} is not a readable file")
        return self

    @model_validator(mode="after")
    def _production_secrets(self) -> Settings:
        if self.environment == "production" and self.totp_encryption_key is None:
            raise ValueError(
                "TOTP_ENCRYPTION_KEY is required when ENVIRONMENT=production "
                "(TOTP secrets are encrypted at rest with it)"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@cache
def get_settings() -> Settings:
    return Settings()
