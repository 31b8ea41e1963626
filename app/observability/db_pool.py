"""Keeps shop_db_pool_connections current from SQLAlchemy pool events.

Each worker sets its own values on every check-out and check-in; in
multiprocess mode /metrics sums the live workers (multiprocess_mode=livesum).
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event
from sqlalchemy.pool import Pool, QueuePool

from app.observability import metrics


def _capacity(pool: Pool) -> int:
    if isinstance(pool, QueuePool):
        return pool.size() + max(pool._max_overflow, 0)
    return 1


def track_pools(pools: list[Pool]) -> None:
    def refresh(*_: Any) -> None:
        checked_out = idle = capacity = 0
        for pool in pools:
            if isinstance(pool, QueuePool):
                checked_out += pool.checkedout()
                idle += pool.checkedin()
            capacity += _capacity(pool)
        metrics.db_pool_connections.labels("checked_out").set(checked_out)
        metrics.db_pool_connections.labels("idle").set(idle)
        metrics.db_pool_connections.labels("max").set(capacity)

    def refresh_soon(*_: Any) -> None:
        # The pool fires "checkin" before it takes the connection back: count after it has.
        try:
            asyncio.get_running_loop().call_soon(refresh)
        except RuntimeError:
            refresh()

    for pool in pools:
        for name in ("checkout", "checkin", "connect", "close"):
            event.listen(pool, name, refresh_soon)
    refresh()
