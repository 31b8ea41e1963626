"""What both benchmarks start: free loopback ports, processes waited for and stopped,
and the partner sandboxes the shop pays, ships and mails through."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx

REPO = Path(__file__).resolve().parent.parent
PARTNER_PORTS = ("payments", "couriers", "smtp", "admin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    """Until `url` answers below 500; a process that exits first is an error."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process serving {url} exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def partner_sandboxes(log: IO[bytes] | int = subprocess.DEVNULL) -> Iterator[dict[str, str]]:
    """`python -m app.sandbox` (payments, couriers, SMTP sink) on free loopback ports.

    Yields the PARTNERS_* environment of a shop that uses them: the benchmarked
    checkout quotes at the couriers, pays at a provider and queues its mail, as
    in production.
    """
    ports = {name: free_port() for name in PARTNER_PORTS}
    webhook_secrets = {
        "SANDBOX_PAYMENTS_WEBHOOK_SECRET": secrets.token_urlsafe(24),
        "SANDBOX_COURIERS_WEBHOOK_SECRET": secrets.token_urlsafe(24),
    }
    process = subprocess.Popen(  # noqa: S603 - fixed command, our own module
        [sys.executable, "-m", "app.sandbox", "--host", "127.0.0.1", "--log-level", "warning",
         *(arg for name, port in ports.items() for arg in (f"--{name}-port", str(port)))],
        cwd=REPO, env={**os.environ, **webhook_secrets}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        for name in ("admin", "payments", "couriers"):
            wait_for(f"http://127.0.0.1:{ports[name]}/healthz", process)
        yield {
            "PARTNERS_PAYMENTS_BASE_URL": f"http://127.0.0.1:{ports['payments']}",
            "PARTNERS_COURIERS_BASE_URL": f"http://127.0.0.1:{ports['couriers']}",
            "PARTNERS_SMTP_HOST": "127.0.0.1",
            "PARTNERS_SMTP_PORT": str(ports["smtp"]),
            "PARTNERS_PAYMENTS_WEBHOOK_SECRET": webhook_secrets["SANDBOX_PAYMENTS_WEBHOOK_SECRET"],
            "PARTNERS_COURIERS_WEBHOOK_SECRET": webhook_secrets["SANDBOX_COURIERS_WEBHOOK_SECRET"],
        }
    finally:
        stop(process)
