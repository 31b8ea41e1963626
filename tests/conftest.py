"""Root fixtures any suite may reuse: real servers started on loopback, on free ports.

- `postgres_server`: a private PostgreSQL cluster (Debian's postgresql package), initdb'd
  into a temporary directory, password-authenticated; `create_database()` hands out fresh
  databases owned by a test role.
- `redis_server_factory` / `redis_url`: redis-server processes without persistence.
- `payments_sandbox`: the payment providers' sandbox (app/sandbox/payments) as a process.
- `partner_sandboxes` / `start_partner_sandboxes()`: every partner sandbox
  (`python -m app.sandbox`: payments, couriers, SMTP sink, admin) as a process.
- `shop_factory` (per test), `module_shop_factory`, `session_shop_factory` / `running_shop`:
  the shop served exactly as in production (`python -m app.serve`: gunicorn + uvicorn
  workers, multiprocess metrics), seeded, paying at `payments_sandbox` and shipping and
  mailing through `partner_sandboxes`; a shop stops when the scope that started it ends.

Every other server stops at the end of the session.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from local_processes import NotReady, free_port, start, wait_for_http, wait_for_port
from local_processes import stop as stop_process
from tests.certificates import issue_ca_and_server_cert

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TEST_SEED_PRODUCTS = 300


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the built lab run last, in their own order: once built, its containers
    keep two cores busy until the session ends, which doubled the time of every suite
    that ran after them. (`make test` goes further and gives them a session of their own.)
    The fault drills come last of all: they need the lab as the other tests leave it."""
    items.sort(
        key=lambda item: (
            item.get_closest_marker("lab") is not None,
            item.get_closest_marker("drill") is not None,
        )
    )


# --- PostgreSQL -------------------------------------------------------------


def _pg_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        raise RuntimeError("PostgreSQL is not installed (make deps installs Debian's postgresql)")
    return Path(candidates[-1]).parent


@dataclass
class PostgresServer:
    host: str
    port: int
    password: str
    bindir: Path
    socket_dir: Path
    role: str = "shop_test"
    role_password: str = field(default_factory=lambda: secrets.token_hex(16))
    _role_created: bool = False

    def psql(self, sql: str, database: str = "postgres") -> None:
        subprocess.run(
            [
                str(self.bindir / "psql"),
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ],
            check=True,
            env={**os.environ, "PGPASSWORD": self.password},
            capture_output=True,
        )

    def create_database(self, name: str | None = None) -> str:
        """A fresh, empty database owned by the test role; returns its async SQLAlchemy URL."""
        if not self._role_created:
            self.psql(f"CREATE ROLE {self.role} LOGIN PASSWORD '{self.role_password}'")
            self._role_created = True
        name = name or f"shop_{secrets.token_hex(4)}"
        self.psql(f"CREATE DATABASE {name} OWNER {self.role}")
        return (
            f"postgresql+psycopg://{self.role}:{self.role_password}@{self.host}:{self.port}/{name}"
        )


def _as_postgres_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = _pg_bindir()
    base = Path(tempfile.mkdtemp(prefix="shop-pg-"))
    data, sockets, pwfile = base / "data", base / "sockets", base / "pwfile"
    password = secrets.token_hex(16)
    sockets.mkdir()
    pwfile.write_text(password)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
        shutil.chown(pwfile, "postgres")
    subprocess.run(
        _as_postgres_user(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        ),
        check=True,
        capture_output=True,
    )
    port = free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sockets} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        _as_postgres_user(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(base / "postgres.log"),
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    server = PostgresServer("127.0.0.1", port, password, bindir, sockets)
    try:
        yield server
    finally:
        subprocess.run(
            _as_postgres_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


# --- Redis ------------------------------------------------------------------


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop_process(self.process)


def _redis_pongs(sock: socket.socket) -> bool:
    sock.sendall(b"PING\r\n")
    return sock.recv(16).startswith(b"+PONG")


@pytest.fixture(scope="session")
def redis_server_factory() -> Iterator[callable]:
    servers: list[RedisServer] = []

    def start_redis(port: int | None = None) -> RedisServer:
        port = port or free_port()
        proc = start(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            output=subprocess.DEVNULL,
        )
        try:
            wait_for_port(
                port, proc, timeout_seconds=20, attempt_timeout_seconds=0.2, probe=_redis_pongs
            )
        except NotReady as exc:
            stop_process(proc, timeout_seconds=0)
            raise RuntimeError(f"redis-server did not start: {exc}") from None
        server = RedisServer(port, proc)
        servers.append(server)
        return server

    yield start_redis
    for server in servers:
        server.stop()


# --- payment sandbox ----------------------------------------------------------


@dataclass
class Sandbox:
    url: str
    process: subprocess.Popen[bytes]


def start_payments_sandbox() -> Sandbox:
    port = free_port()
    proc = start(
        [
            PYTHON,
            "-m",
            "app.sandbox.payments",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        output=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/healthz", proc, timeout_seconds=30, interval_seconds=0.1)
    return Sandbox(url, proc)


@pytest.fixture(scope="session")
def payments_sandbox() -> Iterator[Sandbox]:
    sandbox = start_payments_sandbox()
    yield sandbox
    stop_process(sandbox.process)


# --- all partner sandboxes (couriers, SMTP sink, payments, admin) ------------------------


@dataclass
class PartnerSandboxes:
    """`python -m app.sandbox` on free ports, tracking advanced only on demand."""

    process: subprocess.Popen[bytes]
    payments_url: str
    couriers_url: str
    admin_url: str  # /metrics, /admin/faults, /smtp/messages
    smtp_port: int
    payments_webhook_secret: str
    couriers_webhook_secret: str
    ca_file: Path | None = None  # set when the sandboxes speak TLS (HTTPS, SMTP STARTTLS)
    # Required by the TLS sandboxes, as the providers require theirs (None: not checked).
    payments_api_key: str | None = None
    smtp_login: tuple[str, str] | None = None

    def shop_env(self, *, payments: bool = True) -> dict[str, str]:
        """The PARTNERS_* variables of a shop that uses these sandboxes."""
        env = {
            "PARTNERS_COURIERS_BASE_URL": self.couriers_url,
            "PARTNERS_SMTP_HOST": "127.0.0.1",
            "PARTNERS_SMTP_PORT": str(self.smtp_port),
            "PARTNERS_PAYMENTS_WEBHOOK_SECRET": self.payments_webhook_secret,
            "PARTNERS_COURIERS_WEBHOOK_SECRET": self.couriers_webhook_secret,
        }
        if self.ca_file is not None:
            env["PARTNERS_CA_FILE"] = str(self.ca_file)
            env["PARTNERS_SMTP_STARTTLS"] = "true"
        if self.payments_api_key is not None:
            env["PARTNERS_PAYMENTS_API_KEY"] = self.payments_api_key
        if self.smtp_login is not None:
            env["PARTNERS_SMTP_USERNAME"], env["PARTNERS_SMTP_PASSWORD"] = self.smtp_login
        if payments:
            env["PARTNERS_PAYMENTS_BASE_URL"] = self.payments_url
        return env

    def stop(self) -> None:
        stop_process(self.process)


def start_partner_sandboxes(tls_folder: Path | None = None) -> PartnerSandboxes:
    """With `tls_folder`, a CA and a certificate are made there and the sandboxes speak
    TLS (payments and couriers HTTPS, SMTP STARTTLS required; the admin port stays HTTP)
    and require credentials like the providers: a payment API key and an SMTP login."""
    ports = {name: free_port() for name in ("payments", "couriers", "smtp", "admin")}
    secrets_ = {
        "SANDBOX_PAYMENTS_WEBHOOK_SECRET": secrets.token_urlsafe(24),
        "SANDBOX_COURIERS_WEBHOOK_SECRET": secrets.token_urlsafe(24),
    }
    ca_file = None
    scheme = "http"
    if tls_folder is not None:
        ca_file, cert, key = issue_ca_and_server_cert(tls_folder)
        secrets_.update(
            SANDBOX_TLS_CERT_FILE=str(cert),
            SANDBOX_TLS_KEY_FILE=str(key),
            SANDBOX_PAYMENTS_API_KEY=secrets.token_urlsafe(24),
            SANDBOX_SMTP_USERNAME="shop-mailer",
            SANDBOX_SMTP_PASSWORD=secrets.token_urlsafe(24),
        )
        scheme = "https"
    proc = start(
        [PYTHON, "-m", "app.sandbox", "--host", "127.0.0.1", "--log-level", "warning",
         "--step-seconds", "0",
         *(arg for name, port in ports.items() for arg in (f"--{name}-port", str(port)))],
        cwd=REPO,
        env={**os.environ, **secrets_},
        output=subprocess.DEVNULL,
    )  # fmt: skip
    sandboxes = PartnerSandboxes(
        process=proc,
        payments_url=f"{scheme}://127.0.0.1:{ports['payments']}",
        couriers_url=f"{scheme}://127.0.0.1:{ports['couriers']}",
        admin_url=f"http://127.0.0.1:{ports['admin']}",
        smtp_port=ports["smtp"],
        payments_webhook_secret=secrets_["SANDBOX_PAYMENTS_WEBHOOK_SECRET"],
        couriers_webhook_secret=secrets_["SANDBOX_COURIERS_WEBHOOK_SECRET"],
        ca_file=ca_file,
        payments_api_key=secrets_.get("SANDBOX_PAYMENTS_API_KEY"),
        smtp_login=(
            (secrets_["SANDBOX_SMTP_USERNAME"], secrets_["SANDBOX_SMTP_PASSWORD"])
            if tls_folder is not None
            else None
        ),
    )
    verify = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
    try:
        for url in (sandboxes.admin_url, sandboxes.couriers_url, sandboxes.payments_url):
            wait_for_http(
                f"{url}/healthz", proc, timeout_seconds=30, interval_seconds=0.1, verify=verify
            )
    except RuntimeError:
        sandboxes.stop()
        raise
    return sandboxes


@pytest.fixture(scope="session")
def partner_sandboxes() -> Iterator[PartnerSandboxes]:
    sandboxes = start_partner_sandboxes()
    yield sandboxes
    sandboxes.stop()


# --- the shop -------------------------------------------------------------------


@dataclass
class ShopServer:
    url: str
    process: subprocess.Popen[bytes]
    database_url: str
    admin_email: str
    admin_password: str
    log_path: Path
    admin_token: str | None = None  # cached by clients that log the admin in

    def stop(self) -> None:
        stop_process(self.process)
        shutil.rmtree(self.log_path.parent, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def production_shop_env() -> dict[str, str]:
    """What a shop needs beyond its partners' settings to start with ENVIRONMENT=production
    (a TOTP encryption key: a Fernet key, 32 random bytes)."""
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return {"ENVIRONMENT": "production", "TOTP_ENCRYPTION_KEY": key}


def start_shop(
    database_url: str,
    *,
    payments_url: str,
    workers: int = 2,
    redis_url: str | None = None,
    seed_products: int = TEST_SEED_PRODUCTS,
    extra_env: dict[str, str] | None = None,
    ca_file: str | None = None,
) -> ShopServer:
    """With TLS_CERT_FILE in extra_env the shop serves HTTPS (its URL says so), verified
    against `ca_file`."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="shop-run-"))
    admin_password = secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "BIND_HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
        "SHOP_ADMIN_EMAIL": "admin@shop.test",
        "SHOP_ADMIN_PASSWORD": admin_password,
        "SEED_PRODUCTS": str(seed_products),
        "PARTNERS_PAYMENTS_BASE_URL": payments_url,
        "LOG_LEVEL": "INFO",
        # Cheaper argon2 than production (still argon2id): the suite registers many users.
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "8192",
        "PASSWORD_HASH_PARALLELISM": "1",
        # Tests wait out login delays: the first is 1 s here (30 s by default).
        "LOGIN_BACKOFF_INITIAL_SECONDS": "1",
        # The risk engine runs as in production, but every test customer checks out from
        # 127.0.0.1 with the same test card: velocity limits would challenge them all.
        "PARTNERS_FRAUD__MAX_ORDERS_PER_IP": "1000000",
        "PARTNERS_FRAUD__MAX_ORDERS_PER_PAYMENT_TOKEN": "1000000",
        "PARTNERS_FRAUD__MAX_ORDERS_PER_ACCOUNT": "1000000",
        "PARTNERS_OUTBOX_POLL_SECONDS": "0.2",
    }
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra_env or {})
    log_path = workdir / "shop.log"
    proc = start(
        [PYTHON, "-m", "app.serve", "--seed-if-empty"], cwd=workdir, env=env, output=log_path
    )
    scheme = "https" if env.get("TLS_CERT_FILE") else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        wait_for_http(
            f"{url}/readyz",
            proc,
            timeout_seconds=90,
            interval_seconds=0.1,
            verify=ssl.create_default_context(cafile=ca_file) if ca_file else True,
        )
    except RuntimeError:
        stop_process(proc)
        raise RuntimeError(
            f"the shop did not start:\n{log_path.read_text(errors='replace')}"
        ) from None
    return ShopServer(url, proc, database_url, "admin@shop.test", admin_password, log_path)


ShopFactory = Callable[..., ShopServer]


@pytest.fixture(scope="session")
def _start_wired_shop(
    payments_sandbox: Sandbox, partner_sandboxes: PartnerSandboxes
) -> ShopFactory:
    """`start_shop` paying at `payments_sandbox` and shipping and mailing through
    `partner_sandboxes` unless `payments_url` or `extra_env` say otherwise."""

    def start(database_url: str, **options: object) -> ShopServer:
        options.setdefault("payments_url", payments_sandbox.url)
        options["extra_env"] = {
            **partner_sandboxes.shop_env(payments=False),
            **(options.get("extra_env") or {}),  # type: ignore[dict-item]
        }
        return start_shop(database_url, **options)  # type: ignore[arg-type]

    return start


@contextlib.contextmanager
def _shops_stopped_after(start: ShopFactory) -> Iterator[ShopFactory]:
    started: list[ShopServer] = []

    def factory(database_url: str, **options: object) -> ShopServer:
        shop = start(database_url, **options)
        started.append(shop)
        return shop

    try:
        yield factory
    finally:
        for shop in started:
            shop.stop()


# One factory per scope, so a shop stops when the scope that asked for it ends: every
# idle shop keeps its workers polling (outbox, reconciler) at a few % of a core each,
# and a suite that kept them all until the session ended ran at half speed by its end.
@pytest.fixture
def shop_factory(_start_wired_shop: ShopFactory) -> Iterator[ShopFactory]:
    """Start shops for one test: `shop_factory(database_url, **options)` (see `start_shop`);
    they stop when the test ends."""
    with _shops_stopped_after(_start_wired_shop) as factory:
        yield factory


@pytest.fixture(scope="module")
def module_shop_factory(_start_wired_shop: ShopFactory) -> Iterator[ShopFactory]:
    """`shop_factory` for module-scoped fixtures: the shops stop when the module ends."""
    with _shops_stopped_after(_start_wired_shop) as factory:
        yield factory


@pytest.fixture(scope="session")
def session_shop_factory(_start_wired_shop: ShopFactory) -> Iterator[ShopFactory]:
    """`shop_factory` for session- and package-scoped fixtures (the latter stop their shop
    themselves when the package ends)."""
    with _shops_stopped_after(_start_wired_shop) as factory:
        yield factory


@pytest.fixture(scope="session")
def running_shop(
    session_shop_factory: ShopFactory, tmp_path_factory: pytest.TempPathFactory
) -> ShopServer:
    """One seeded shop on SQLite, served by gunicorn with two workers, for the whole session."""
    db_path = tmp_path_factory.mktemp("running-shop") / "shop.db"
    return session_shop_factory(f"sqlite+aiosqlite:///{db_path}")


def database_for(backend: str, request: pytest.FixtureRequest, folder: Path) -> str:
    """A new, empty shop database on `backend` ("sqlite": a file in `folder`; "postgres":
    a database on the session's PostgreSQL server), for fixtures parametrized over both."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{folder / 'shop.db'}"
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    return postgres.create_database()
