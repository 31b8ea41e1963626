"""`make run` as a developer runs it: the shop and the sandboxes accept each other's webhooks.

The test runs the Makefile's own `run` recipe (`make -o deps run`, which calls
scripts/run-local.sh) with a small catalog on free loopback ports, places an order
and ships it, and checks that every webhook the sandboxes pushed (`charge.succeeded`,
`tracking.updated`) was answered 200 by the shop, i.e. verified with the shared secret,
not refused with 401 ("no webhook secret is configured"); the pushed `picked_up` alone
moves the order to shipped. It also checks, from /proc, that each partner has its own
secret, that the shop and the sandboxes hold the same one, and that no secret is on any
command line of the run.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pyotp
import pytest

from local_processes import NotReady, free_port, wait_for_http
from tests.app.client import ADDRESS, APPROVED_CARD, SHIPPING_OPTION

REPO = Path(__file__).resolve().parents[2]
ADMIN_EMAIL = "admin@shop.test"
PASSWORD = "correct horse battery"
SECRET_NAMES = (
    "PARTNERS_PAYMENTS_WEBHOOK_SECRET",
    "PARTNERS_COURIERS_WEBHOOK_SECRET",
    "SANDBOX_PAYMENTS_WEBHOOK_SECRET",
    "SANDBOX_COURIERS_WEBHOOK_SECRET",
)
T = TypeVar("T")


@dataclass
class LocalRun:
    process: subprocess.Popen[bytes]  # make, leader of its own process group
    shop_url: str
    payments_url: str
    couriers_url: str
    admin_password: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ")"
        if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:
            members.append(int(entry.name))
    return members


def _stop_group(process: subprocess.Popen[bytes], timeout_seconds: float = 30) -> None:
    """SIGTERM to the run's own process group (make, the script, sandboxes, gunicorn), then KILL."""
    pgid = process.pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if process.poll() is not None and not _group_members(pgid):
                return
            time.sleep(0.1)
    process.wait(5)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    workdir = tmp_path_factory.mktemp("make-run")
    ports = {name: free_port() for name in ("shop", "payments", "couriers", "smtp", "admin")}
    admin_password = secrets.token_urlsafe(16)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PARTNERS_", "SANDBOX_"))
        and name not in {"REDIS_URL", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}
    }
    env.update(
        {
            "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'shop.db'}",
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
            "SHOP_ADMIN_EMAIL": ADMIN_EMAIL,
            "SHOP_ADMIN_PASSWORD": admin_password,
            "PASSWORD_HASH_TIME_COST": "1",
            "PASSWORD_HASH_MEMORY_KIB": "8192",
            "PASSWORD_HASH_PARALLELISM": "1",
            # the sandboxes on free ports instead of the topology's, and the shop using them
            "SANDBOX_PAYMENTS_PORT": str(ports["payments"]),
            "SANDBOX_COURIERS_PORT": str(ports["couriers"]),
            "SANDBOX_SMTP_PORT": str(ports["smtp"]),
            "SANDBOX_ADMIN_PORT": str(ports["admin"]),
            "SANDBOX_TRACKING_STEP_SECONDS": "0",  # tracking moves only when the test says
            "PARTNERS_PAYMENTS_BASE_URL": f"http://127.0.0.1:{ports['payments']}",
            "PARTNERS_COURIERS_BASE_URL": f"http://127.0.0.1:{ports['couriers']}",
            "PARTNERS_SMTP_HOST": "127.0.0.1",
            "PARTNERS_SMTP_PORT": str(ports["smtp"]),
        }
    )
    log_path = workdir / "make-run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "-o", "deps", "run",
             "HOST=127.0.0.1", f"PORT={ports['shop']}", "WORKERS=1", "SEED_PRODUCTS=60",
             f"PY={sys.executable}"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    run = LocalRun(
        process=process,
        shop_url=f"http://127.0.0.1:{ports['shop']}",
        payments_url=f"http://127.0.0.1:{ports['payments']}",
        couriers_url=f"http://127.0.0.1:{ports['couriers']}",
        admin_password=admin_password,
        log_path=log_path,
    )
    try:
        for url in (f"{run.payments_url}/healthz", f"{run.couriers_url}/healthz"):
            wait_for_http(url, process, timeout_seconds=60, interval_seconds=0.2)
        wait_for_http(f"{run.shop_url}/readyz", process, timeout_seconds=120, interval_seconds=0.2)
    except NotReady as exc:
        _stop_group(process)
        pytest.fail(f"`make run` did not come up: {exc}\n{run.log()}")
    try:
        yield run
    finally:
        _stop_group(process)


def eventually(probe: Callable[[], T | None], what: str, within_seconds: float = 30) -> T:
    deadline = time.monotonic() + within_seconds
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def settled_deliveries(partners: httpx.Client, sandbox_url: str) -> list[dict[str, Any]]:
    """The sandbox's webhook deliveries once each has an answer (or given up retrying)."""

    def answered() -> list[dict[str, Any]] | None:
        deliveries = partners.get(f"{sandbox_url}/admin/webhooks").json()["deliveries"]
        if deliveries and all(d["delivered"] or d["attempts"] >= 2 for d in deliveries):
            return deliveries
        return None

    return eventually(answered, f"webhook deliveries of {sandbox_url} to be answered")


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _login(shop: httpx.Client, email: str, password: str) -> str:
    answer = shop.post("/api/auth/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def _admin_login(shop: httpx.Client, email: str, password: str) -> str:
    """The seeded admin's session, with TOTP enrolled (admin routes require it)."""
    token = _login(shop, email, password)
    enrol = shop.post("/api/account/mfa/totp", json={"password": password}, headers=_auth(token))
    assert enrol.status_code == 200, enrol.text
    code = pyotp.TOTP(enrol.json()["secret"]).now()
    verified = shop.post("/api/account/mfa/totp/verify", json={"code": code}, headers=_auth(token))
    assert verified.status_code == 200, verified.text
    return token


@pytest.mark.timeout(240)
def test_make_run_shop_accepts_the_sandboxes_signed_webhooks(local_run: LocalRun) -> None:
    run = local_run
    with (
        httpx.Client(base_url=run.shop_url, timeout=30) as shop,
        httpx.Client(timeout=30) as partners,
    ):
        for sandbox_url, path in (
            (run.payments_url, "/api/webhooks/payments"),
            (run.couriers_url, "/api/webhooks/couriers"),
        ):
            target = partners.get(f"{sandbox_url}/admin/webhooks").json()["url"]
            assert target == f"{run.shop_url}{path}", f"{sandbox_url} pushes to {target!r}"

        # a customer buys something small (under any fraud threshold)
        email = f"make-run-{secrets.token_hex(4)}@example.com"
        registered = shop.post(
            "/api/auth/register",
            json={"email": email, "password": PASSWORD, "full_name": "Make Run"},
        )
        assert registered.status_code == 201, registered.text
        token = _login(shop, email, PASSWORD)
        listing = shop.get("/api/products", params={"page_size": 50})
        assert listing.status_code == 200, listing.text
        item = next(
            i for i in listing.json()["items"] if i["in_stock"] and i["price"]["amount"] < 20_000
        )
        added = shop.put(
            f"/api/cart/items/{item['sku']}", json={"quantity": 1}, headers=_auth(token)
        )
        assert added.status_code == 200, added.text
        placed = shop.post(
            "/api/checkout",
            json={
                "address": ADDRESS,
                "shipping_option": SHIPPING_OPTION,
                "payment": {"channel": "card", "token": APPROVED_CARD},
            },
            headers={**_auth(token), "Idempotency-Key": secrets.token_hex(12)},
        )
        assert placed.status_code == 201, placed.text
        order = placed.json()
        assert order["status"] == "paid", order

        # the payment sandbox pushed charge.succeeded, and the shop verified and took it
        payments = settled_deliveries(partners, run.payments_url)
        assert "charge.succeeded" in {d["type"] for d in payments}, payments
        assert [d["status_code"] for d in payments] == [200] * len(payments), payments

        # packed: a label at the courier; picked up: its pushed tracking.updated ships the order
        admin = _admin_login(shop, ADMIN_EMAIL, run.admin_password)
        packed = shop.post(
            f"/api/admin/orders/{order['id']}/transition",
            json={"to": "packed"},
            headers=_auth(admin),
        )
        assert packed.status_code == 200, packed.text
        courier, tracking_number = packed.json()["courier"], packed.json()["tracking_number"]
        advanced = partners.post(f"{run.couriers_url}/admin/shipments/{tracking_number}/advance")
        assert advanced.status_code == 200 and advanced.json()["status"] == "picked_up"

        def shipped() -> bool:
            current = shop.get(f"/api/orders/{order['id']}", headers=_auth(token))
            return current.json()["status"] == "shipped"

        eventually(shipped, f"the pushed picked_up of {courier} {tracking_number} to ship it")
        tracking = settled_deliveries(partners, run.couriers_url)
        assert {d["type"] for d in tracking} == {"tracking.updated"}, tracking
        assert [d["status_code"] for d in tracking] == [200] * len(tracking), tracking


def test_make_run_gives_each_partner_one_secret_by_environment_only(local_run: LocalRun) -> None:
    environments: list[dict[str, str]] = []
    command_lines: list[bytes] = []
    for pid in _group_members(local_run.process.pid):
        try:
            command_lines.append(Path(f"/proc/{pid}/cmdline").read_bytes())
            raw = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        pairs = (entry.partition(b"=") for entry in raw.split(b"\0") if entry)
        environments.append({k.decode(): v.decode(errors="replace") for k, _, v in pairs})
    found: dict[str, set[str]] = {name: set() for name in SECRET_NAMES}
    for environment in environments:
        for name in SECRET_NAMES:
            if name in environment:
                found[name].add(environment[name])
    for name, values in found.items():
        assert len(values) == 1, f"{name}: {len(values)} distinct values in the run's processes"
    payments, couriers = (
        found["SANDBOX_PAYMENTS_WEBHOOK_SECRET"],
        found["SANDBOX_COURIERS_WEBHOOK_SECRET"],
    )
    assert found["PARTNERS_PAYMENTS_WEBHOOK_SECRET"] == payments  # the shop holds the same
    assert found["PARTNERS_COURIERS_WEBHOOK_SECRET"] == couriers
    assert payments != couriers, "the two partners share one secret"
    for secret in (*payments, *couriers):
        assert len(secret) >= 32
        assert not any(secret.encode() in line for line in command_lines), "a secret is in argv"
        for tracked in ("Makefile", "scripts/run-local.sh"):
            assert secret not in (REPO / tracked).read_text()
