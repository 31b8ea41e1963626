"""The shop's ASGI app: `create_app()` (uvicorn/gunicorn use `app.main:create_app` as a factory)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.staticfiles import StaticFiles

from app.api import account, admin, auth, cart, catalog, checkout, ops, orders, webhooks
from app.api import openapi as api_document
from app.db.migrate import upgrade_to_head
from app.domain.catalog import count_bestsellers_out_of_stock
from app.errors import install_error_handlers
from app.observability import metrics
from app.observability.db_pool import track_pools
from app.observability.logging import configure_logging
from app.observability.middleware import ObservabilityMiddleware, SecurityHeaders
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
    """Let the worker finish the message in hand, then cancel."""
    worker.stop()
    try:
        await asyncio.wait_for(asyncio.shield(task), MAIL_WORKER_STOP_SECONDS)
    except TimeoutError:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


DOCS_ASSETS = "/docs/assets"


def _install_docs(app: FastAPI) -> None:
    """/docs: Swagger UI from the swagger-ui-bundle package, served by the shop (no CDN).

    Its CSP allows only its own assets and its one inline script (by hash).
    """
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{app.title} - API docs",
        swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
    ).body
    html = bytes(page).decode()
    inline = html[html.rindex("<script>") + len("<script>") : html.rindex("</script>")]
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    csp = (
        f"default-src 'none'; script-src 'self' 'sha256-{digest}'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
    app.mount(
        DOCS_ASSETS, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets"
    )

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(html, headers={"Content-Security-Policy": csp})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    services = build_services(settings)
    readiness = ops.ReadinessProbe(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auto_migrate:
            await asyncio.to_thread(upgrade_to_head, settings.database_url)
        track_pools(services.db.pools)
        refresher = asyncio.create_task(_refresh_bestsellers(services))
        mail_worker = services.mail_worker() if settings.mail_worker_enabled else None
        mailer = asyncio.create_task(_run_mail_worker(mail_worker)) if mail_worker else None
        reconciler = services.reconciler() if settings.reconciler_enabled else None
        reconciling = asyncio.create_task(reconciler.run()) if reconciler else None
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
            if reconciler is not None and reconciling is not None:
                reconciler.stop()
                reconciling.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reconciling
            if mail_worker is not None and mailer is not None:
                await _stop_mail_worker(mail_worker, mailer)
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await readiness.aclose()
            await services.aclose()
            log.info("shop stopped")

    app = FastAPI(
        title="Export shop",
        version=settings.build_version,
        description="Catalog, cart, checkout, orders, accounts and back office of the export shop. "
        "Money is integer minor units with a currency. Errors are "
        '`{"error": {"code", "message", ...}}`.',
        lifespan=lifespan,
        # API docs and schema only where enabled (API_DOCS_ENABLED; off in production).
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services
    app.state.readiness = readiness
    if settings.docs_enabled:
        _install_docs(app)
    install_error_handlers(app)
    for module in (ops, catalog, auth, account, cart, checkout, orders, admin, webhooks):
        app.include_router(module.router)
    api_document.install(app, settings)
    app.add_middleware(
        ObservabilityMiddleware,
        max_body_bytes=settings.max_body_bytes,
        security_headers=SecurityHeaders(
            hsts_always=settings.hsts_always,
            hsts_max_age_seconds=settings.hsts_max_age_seconds,
        ),
    )

    metrics.build_info.labels(settings.build_version, settings.build_revision).set(1)
    metrics.precreate_series(currency=settings.currency)
    # iter_route_contexts: since FastAPI 0.137 app.routes holds included routers unexpanded
    metrics.precreate_route_series(
        (context.path, method)
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute) and context.path
        for method in sorted(context.methods or ())
    )
    return app
