"""The one place where the shop's collaborators are chosen and built from settings:
database, catalog cache, payment gateway, courier, risk check.

Swapping an implementation (another payment provider client, a courier API,
the fraud engine) is a change here and nowhere else.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from argon2 import PasswordHasher

from app.db.session import Database
from app.domain.accounts import AuthPolicy
from app.domain.cache import CatalogCache, build_cache
from app.domain.checkout import CheckoutServices
from app.domain.orders import Fulfilment
from app.domain.risk import AllowAll, RiskAssessor
from app.domain.shipping import RateTableCourier
from app.domain.throttle import ThrottlePolicy
from app.partners.interfaces import CourierGateway, PaymentGateway
from app.partners.payments import build_payment_gateway
from app.partners.settings import PartnersSettings
from app.settings import Settings


@dataclass
class Services:
    settings: Settings
    db: Database
    cache: CatalogCache
    payments: PaymentGateway
    courier: CourierGateway
    risk: RiskAssessor
    auth: AuthPolicy

    @property
    def checkout(self) -> CheckoutServices:
        return CheckoutServices(
            db=self.db,
            cache=self.cache,
            payments=self.payments,
            courier=self.courier,
            risk=self.risk,
            currency=self.settings.currency,
            origin_country=self.settings.origin_country,
        )

    @property
    def fulfilment(self) -> Fulfilment:
        return Fulfilment(payments=self.payments, courier=self.courier, cache=self.cache)

    async def aclose(self) -> None:
        close = getattr(self.payments, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
        await self.cache.close()
        await self.db.dispose()


def build_payments() -> PaymentGateway:
    # HTTP client of the payment providers (app/partners); PARTNERS_* env configures it.
    return build_payment_gateway(PartnersSettings())


def build_courier(settings: Settings) -> CourierGateway:
    return RateTableCourier(origin_country=settings.origin_country, currency=settings.currency)


def build_risk() -> RiskAssessor:
    return AllowAll()


def build_services(settings: Settings) -> Services:
    return Services(
        settings=settings,
        db=Database(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        ),
        cache=build_cache(
            settings.redis_url,
            ttl_seconds=settings.cache_ttl_seconds,
            redis_ttl_seconds=settings.redis_cache_ttl_seconds,
            max_entries=settings.cache_max_entries,
        ),
        payments=build_payments(),
        courier=build_courier(settings),
        risk=build_risk(),
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
                ip_max_failures=settings.ip_max_failures,
                ip_window_seconds=settings.ip_failure_window_seconds,
            ),
        ),
    )
