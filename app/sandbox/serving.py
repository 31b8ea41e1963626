"""Serve ASGI apps with uvicorn inside an already running event loop.

Used by the all-in-one runner (several servers in one loop) and by tests (a
sandbox on a free port for the duration of a test).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from app.sandbox.tls import PROVIDER_TLS12_CIPHERS


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host process."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


def bind(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket; port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@dataclass
class RunningServer:
    server: EmbeddedServer
    task: asyncio.Task[None]
    host: str
    port: int
    tls: bool = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


async def start_server(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log_level: str = "warning",
    tls: tuple[str, str] | None = None,
) -> RunningServer:
    """Serve `app` on host:port; with `tls` (certificate file, key file), HTTPS only."""
    sock = bind(host, port)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        # A request hanging on an injected timeout must not hold shutdown up.
        timeout_graceful_shutdown=1,
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
        ssl_ciphers=PROVIDER_TLS12_CIPHERS,
    )
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # raises the start-up error
            raise RuntimeError(f"server on {host}:{port} stopped during start-up")
        await asyncio.sleep(0.01)
    return RunningServer(server, task, host, sock.getsockname()[1], tls=tls is not None)


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve `app` for the duration of the block; yields its base URL."""
    running = await start_server(app, host, port)
    try:
        yield running.url
    finally:
        await running.stop()
