"""What both benchmarks start besides the shop: the partner sandboxes it pays, ships and
mails through. Ports, waiting and stopping are local_processes'."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from local_processes import Output, free_port, start, stop, wait_for_http

REPO = Path(__file__).resolve().parent.parent
PARTNER_PORTS = ("payments", "couriers", "smtp", "admin")
# How long a benchmarked server may take to answer after its start (the shop seeds first).
STARTUP_SECONDS = 120


@contextlib.contextmanager
def partner_sandboxes(log: Output = subprocess.DEVNULL) -> Iterator[dict[str, str]]:
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
    process = start(
        [sys.executable, "-m", "app.sandbox", "--host", "127.0.0.1", "--log-level", "warning",
         *(arg for name, port in ports.items() for arg in (f"--{name}-port", str(port)))],
        cwd=REPO, env={**os.environ, **webhook_secrets}, output=log,
    )  # fmt: skip
    try:
        for name in ("admin", "payments", "couriers"):
            wait_for_http(
                f"http://127.0.0.1:{ports[name]}/healthz", process, timeout_seconds=STARTUP_SECONDS
            )
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
