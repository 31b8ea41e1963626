"""The shop's ASGI app: `create_app()` (uvicorn/gunicorn use `app.main:create_app` as a factory)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.api import account, admin, auth, cart, catalog, checkout, ops, orders, webhooks
from app.db.migrate import upgrade_to_head
from app.domain.catalog import count_bestsellers_out_of_stock
from app.errors import install_error_handlers
from app.observability import metrics
from app.observability.db_pool import track_pools
from app.observability.logging import configure_logging
from app.observability.middleware import ObservabilityMiddleware
from app.partners.mail import OutboxWorker
from app.settings import Settings, get_settings
from app.wiring import Services, build_services

log = logging.getLogger("shop")


async def _refresh_bestsellers(services: Services) -> None:
    while True:
        try:
            async with services.db.read() as session:
                metrics.bestsellers_out_of_stock.set(await count_bestsellers_out_of_stock(session))
        except Exception:
            log.exception("could not refresh shop_bestsellers_out_of_stock")
        await asyncio.sleep(services.settings.bestsellers_refresh_seconds)


MAIL_WORKER_RESTART_SECONDS = 5.0
MAIL_WORKER_STOP_SECONDS = 15.0


async def _run_mail_worker(worker: OutboxWorker) -> None:
    """The outbox worker for the life of the process; a failing round is logged and retried.

    Every serving process runs one: the SQL outbox leases rows with conditional
    UPDATEs, so workers never send the same message twice.
    """
    while True:
        try:
            await worker.run()
            return  # stop() was called
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("mail outbox worker failed; restarting")
            await asyncio.sleep(MAIL_WORKER_RESTART_SECONDS)


async def _stop_mail_worker(worker: OutboxWorker, task: asyncio.Task[None]) -> None:
    """Let the worker finish the message in hand and hand back its leases, then cancel."""
    worker.stop()
    try:
        await asyncio.wait_for(asyncio.shield(task), MAIL_WORKER_STOP_SECONDS)
    except TimeoutError:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    services = build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auto_migrate:
            await asyncio.to_thread(upgrade_to_head, settings.database_url)
        track_pools(services.db.pools)
        refresher = asyncio.create_task(_refresh_bestsellers(services))
        mail_worker = services.mail_worker() if settings.mail_worker_enabled else None
        mailer = asyncio.create_task(_run_mail_worker(mail_worker)) if mail_worker else None
        log.info(
            "shop started",
            extra={
                "database": services.db.engine.dialect.name,
                "cache": services.cache.backend,
                "courier": settings.courier_backend,
                "mail_worker": mail_worker.owner if mail_worker else None,
            },
        )
        try:
            yield
        finally:
            if mail_worker is not None and mailer is not None:
                await _stop_mail_worker(mail_worker, mailer)
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await services.aclose()
            log.info("shop stopped")

    app = FastAPI(
        title="Export shop",
        version=settings.build_version,
        description="Catalog, cart, checkout, orders, accounts and back office of the export shop. "
        "Money is integer minor units with a currency. Errors are "
        '`{"error": {"code", "message", ...}}`.',
        lifespan=lifespan,
    )
    app.state.services = services
    install_error_handlers(app)
    for module in (ops, catalog, auth, account, cart, checkout, orders, admin, webhooks):
        app.include_router(module.router)
    app.add_middleware(ObservabilityMiddleware, max_body_bytes=settings.max_body_bytes)

    metrics.build_info.labels(settings.build_version, settings.build_revision).set(1)
    metrics.precreate_series(currency=settings.currency)
    metrics.precreate_route_series(
        (route.path, method)
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in sorted(route.methods)
    )
    return app
