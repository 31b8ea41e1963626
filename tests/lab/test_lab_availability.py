"""A data-tier blip under a steady load through the edge: what customers see.

Readiness (`/readyz`, what the edge routes on) is the database only. Redis is an
optional cache: stopped, the shop keeps serving through the edge with no failed
request. PostgreSQL stopped: the shop cannot serve, and every request is answered
quickly (503) rather than hung; when it returns the shop recovers by itself.
"""

from __future__ import annotations

import time
import uuid

import pytest
from steady_load import SteadyLoad

from lab import podman

pytestmark = pytest.mark.lab

CATALOG = ["api/products?page_size=5", "api/categories", "api/products?q=mug&page_size=5"]
# GET /api/cart with a cart id reads the database on every call (no cache in front of it).
DATABASE_READ = ["api/cart"]
CART = {"X-Cart-Id": str(uuid.uuid4())}
ANSWER_WITHIN_S = 10.0  # "not hung": far below the edge's 30 s server timeout
RECOVERY_S = 90


def _systemctl(lab, action: str, unit: str) -> None:
    (db,) = lab.hosts_in("data")
    podman.exec_in(lab.container(db.name), ["systemctl", action, unit], timeout=120)


def _wait_until_served(lab, paths: list[str], seconds: float) -> None:
    with SteadyLoad(lab.url("edge_https"), lab.tls(), paths, customers=1, headers=CART) as probe:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            recent = probe.answers[-3:]
            if len(recent) == 3 and all(a.status == 200 for a in recent):
                return
            time.sleep(1)
    pytest.fail(f"the shop did not serve {paths} within {seconds} s: {probe.answers[-5:]}")


def test_the_shop_serves_every_request_while_redis_is_stopped(lab):
    _wait_until_served(lab, CATALOG + DATABASE_READ, RECOVERY_S)
    with SteadyLoad(
        lab.url("edge_https"), lab.tls(), CATALOG + DATABASE_READ, headers=CART
    ) as load:
        time.sleep(3)
        _systemctl(lab, "stop", "redis-server")
        try:
            time.sleep(30)
        finally:
            _systemctl(lab, "start", "redis-server")
        time.sleep(3)
    assert len(load.answers) > 100, len(load.answers)
    assert load.failed() == [], load.failed()[:10]


def test_postgresql_stopped_is_answered_fast_and_the_shop_recovers_by_itself(lab):
    _wait_until_served(lab, DATABASE_READ, RECOVERY_S)
    with SteadyLoad(lab.url("edge_https"), lab.tls(), DATABASE_READ, headers=CART) as load:
        time.sleep(2)
        _systemctl(lab, "stop", "postgresql@15-main")
        stopped_at = time.monotonic()
        try:
            time.sleep(20)
        finally:
            restarting_at = time.monotonic()
            _systemctl(lab, "start", "postgresql@15-main")
        during = [a for a in load.since(stopped_at) if a.at + a.seconds < restarting_at]
        deadline = time.monotonic() + RECOVERY_S
        while time.monotonic() < deadline:
            recent = load.answers[-5:]
            if all(a.status == 200 for a in recent):
                break
            time.sleep(1)
    assert during, "no request was made while PostgreSQL was stopped"
    assert {a.status for a in during} == {503}, sorted({(a.status, a.error) for a in during})
    slow = [a for a in load.answers if a.seconds > ANSWER_WITHIN_S]
    assert slow == [], slow[:5]
    assert all(a.status == 200 for a in load.answers[-5:]), load.answers[-5:]
