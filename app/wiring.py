"""The one place where the shop's collaborators are chosen and built from settings:
database, catalog cache, payment gateway, courier, risk check, order mail.

Swapping an implementation (another payment provider client, a courier API,
the fraud engine) is a change here and nowhere else.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.session import Database
from app.domain.accounts import AuthPolicy
from app.domain.cache import CatalogCache, build_cache
from app.domain.checkout import CheckoutServices
from app.domain.fulfilment import Fulfilment
from app.domain.mail import OrderMailer
from app.domain.reconciler import Reconciler, ReconcilerPolicy
from app.domain.throttle import ThrottlePolicy
from app.partners.couriers import build_courier_gateway
from app.partners.couriers.rate_table import RateTableCourier
from app.partners.fraud import RiskEngine
from app.partners.fraud.sql import SqlRiskHistory
from app.partners.interfaces import CourierGateway, PaymentGateway, RiskAssessor
from app.partners.mail import OutboxWorker, build_outbox_worker
from app.partners.mail.sql import SqlOutboxStore, SqlQuotaStore
from app.partners.payments import build_payment_gateway
from app.partners.settings import PartnersSettings, insecure_partner_settings
from app.settings import Settings


@dataclass
class Services:
    settings: Settings
    partners: PartnersSettings
    db: Database
    cache: CatalogCache
    payments: PaymentGateway
    courier: CourierGateway
    risk: RiskAssessor
    outbox: SqlOutboxStore
    quota: SqlQuotaStore
    auth: AuthPolicy

    @property
    def mailer(self) -> OrderMailer:
        return OrderMailer(outbox=self.outbox)

    @property
    def checkout(self) -> CheckoutServices:
        return CheckoutServices(
            db=self.db,
            cache=self.cache,
            payments=self.payments,
            courier=self.courier,
            risk=self.risk,
            mailer=self.mailer,
            currency=self.settings.currency,
            origin_country=self.settings.origin_country,
            deadline_seconds=self.partners.checkout_deadline_seconds,
        )

    @property
    def fulfilment(self) -> Fulfilment:
        return Fulfilment(
            payments=self.payments,
            courier=self.courier,
            cache=self.cache,
            mailer=self.mailer,
            webhook_window_seconds=self.partners.webhook_tolerance_seconds,
        )

    def reconciler(self) -> Reconciler:
        """The reconciler of this process (one process at a time holds its lease)."""
        return Reconciler(
            self.db,
            self.fulfilment,
            ReconcilerPolicy(
                settle_after_seconds=self.settings.reconcile_after_seconds,
                interval_seconds=self.settings.reconcile_interval_seconds,
                lease_seconds=3 * self.settings.reconcile_interval_seconds,
            ),
        )

    def mail_worker(self) -> OutboxWorker:
        """The outbox worker of this process (SMTP and quota from PARTNERS_*)."""
        return build_outbox_worker(self.partners, store=self.outbox, quota_store=self.quota)

    async def aclose(self) -> None:
        for client in (self.payments, self.courier):
            close = getattr(client, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
        await self.cache.close()
        await self.db.dispose()


def build_payments(partners: PartnersSettings) -> PaymentGateway:
    # HTTP client of the payment providers (app/partners); PARTNERS_* env configures it.
    return build_payment_gateway(partners)


def build_courier(settings: Settings, partners: PartnersSettings) -> CourierGateway:
    if settings.courier_backend == "rate_table":
        return RateTableCourier(origin_country=settings.origin_country, currency=settings.currency)
    # The courier APIs at PARTNERS_COURIERS_BASE_URL (the sandboxes in tests and the lab).
    return build_courier_gateway(partners)


def partner_sessions(db: Database) -> async_sessionmaker[AsyncSession]:
    """Sessions for the partners' SQL stores (risk history, outbox, quota).

    On the write engine: on SQLite its transactions BEGIN IMMEDIATE, as the
    stores' read-then-update statements need; on PostgreSQL it is the one engine.
    """
    return async_sessionmaker(db.write_engine, expire_on_commit=False)


def build_risk(partners: PartnersSettings, db: Database) -> RiskAssessor:
    # The partners' rule engine; its history is in the database, shared by every worker and host.
    # Its reads are plain reads and its one write a lone INSERT (no read-then-write), so it
    # uses the read engine: on SQLite its four history reads per checkout then never
    # queue for the write lock (BEGIN IMMEDIATE) that order placement needs.
    history = SqlRiskHistory(async_sessionmaker(db.engine, expire_on_commit=False))
    return RiskEngine(partners.fraud, history)


class InsecurePartnerSettings(ValueError):
    """Production settings that would send card or customer data to a partner in clear,
    or reach a partner without its credentials."""


def build_services(settings: Settings) -> Services:
    partners = PartnersSettings()
    problems = insecure_partner_settings(partners)
    if settings.environment == "production" and problems:
        raise InsecurePartnerSettings(
            "ENVIRONMENT=production needs TLS and credentials for every partner: "
            + "; ".join(problems)
            + " (use https:// URLs, PARTNERS_SMTP_STARTTLS=true, the payment API key"
            " and the SMTP login)"
        )
    db = Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    sessions = partner_sessions(db)
    return Services(
        settings=settings,
        partners=partners,
        db=db,
        cache=build_cache(
            settings.redis_url,
            ttl_seconds=settings.cache_ttl_seconds,
            redis_ttl_seconds=settings.redis_cache_ttl_seconds,
            max_entries=settings.cache_max_entries,
        ),
        payments=build_payments(partners),
        courier=build_courier(settings, partners),
        risk=build_risk(partners, db),
        outbox=SqlOutboxStore(
            sessions, message_id_domain=partners.mail_from.rpartition("@")[2] or "shop.example"
        ),
        quota=SqlQuotaStore(sessions),
        auth=AuthPolicy(
            session_ttl_seconds=settings.session_ttl_seconds,
            mfa_token_ttl_seconds=settings.mfa_token_ttl_seconds,
            hasher=PasswordHasher(
                time_cost=settings.password_hash_time_cost,
                memory_cost=settings.password_hash_memory_kib,
                parallelism=settings.password_hash_parallelism,
            ),
            throttle=ThrottlePolicy(
                account_max_failures=settings.login_max_failures,
                account_lockout_seconds=settings.login_lockout_seconds,
                account_backoff_initial_seconds=settings.login_backoff_initial_seconds,
                ip_max_failures=settings.ip_max_failures,
                ip_window_seconds=settings.ip_failure_window_seconds,
            ),
        ),
    )
