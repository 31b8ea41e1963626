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

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_PATH = Path("var/shop.db")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    database_url: str = f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH}"
    redis_url: str | None = None
    bind_host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    web_concurrency: int = Field(default=2, ge=1, le=64)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Migrate the schema when the app starts (dev and tests). Deploys set it to
    # false and run `python -m app.db migrate` once instead.
    auto_migrate: bool = True

    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=5, ge=0)

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
    login_max_failures: int = Field(default=5, ge=1)  # per account, then locked
    login_lockout_seconds: int = Field(default=15 * 60, ge=1)
    ip_max_failures: int = Field(default=50, ge=1)  # per client IP per window
    ip_failure_window_seconds: int = Field(default=15 * 60, ge=1)

    bestsellers_refresh_seconds: float = Field(default=30.0, gt=0)
    # Where shipping quotes, labels and tracking come from: the courier APIs of
    # app/partners (PARTNERS_COURIERS_BASE_URL), or the shop's own rate table
    # (no carrier, no tracking feed) as the explicit fallback.
    courier_backend: Literal["partners", "rate_table"] = "partners"
    # Run the mail outbox worker in every serving process (safe: rows are leased).
    mail_worker_enabled: bool = True
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
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@cache
def get_settings() -> Settings:
    return Settings()
