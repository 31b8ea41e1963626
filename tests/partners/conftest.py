"""Fixtures: the sandboxes as real servers on free loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from partners_support import WEBHOOK_SECRET, Sandbox, SmtpSink

from app.sandbox.couriers import create_app as create_couriers_app
from app.sandbox.payments import create_app as create_payments_app
from app.sandbox.serving import serving
from app.sandbox.smtp import create_smtp_sandbox


@pytest.fixture()
async def payments() -> AsyncIterator[Sandbox]:
    app = create_payments_app(webhook_secret=WEBHOOK_SECRET)
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as admin:
        yield Sandbox(url, app, admin)


@pytest.fixture()
async def couriers() -> AsyncIterator[Sandbox]:
    app = create_couriers_app(tracking_step_seconds=0, webhook_secret=WEBHOOK_SECRET)
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as admin:
        yield Sandbox(url, app, admin)


@pytest.fixture()
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    sandbox = create_smtp_sandbox()
    server = await sandbox.listen("127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with serving(sandbox.admin_app) as url, httpx.AsyncClient(base_url=url) as admin:
            yield SmtpSink("127.0.0.1", port, sandbox, admin)
    finally:
        server.close()
        await server.wait_closed()
