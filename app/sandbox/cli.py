"""Command-line plumbing shared by `python -m app.sandbox` and `python -m app.sandbox.payments`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable

from app.sandbox.settings import SandboxSettings


def parser(description: str) -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(description=description)
    cli.add_argument("--host", help="address to listen on (env SANDBOX_HOST; default 127.0.0.1)")
    cli.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return cli


def settings_from(args: argparse.Namespace, **overrides: object) -> SandboxSettings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if args.host:
        values["host"] = args.host
    return SandboxSettings(**values)  # type: ignore[arg-type]


def run(main: Callable[[asyncio.Event], Awaitable[None]], log_level: str) -> None:
    """Run `main(stop)` until SIGINT/SIGTERM sets `stop`."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if log_level != "debug":  # aiosmtpd logs every SMTP command at INFO
        logging.getLogger("mail.log").setLevel(logging.WARNING)

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(runner())
