"""Real servers for the monitoring tests: exporters, PostgreSQL, Redis, HAProxy,
the shop, Prometheus and Alertmanager, each on a free loopback port.

Every process is started here, waited for until it answers, and stopped by
the fixture that started it.
"""

from __future__ import annotations

import datetime
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import local_processes
from monitoring import MONITORING_DIR

STARTUP_SECONDS = 60.0
PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass
class Service:
    """One started process and the file its output goes to."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]

    def stop(self) -> None:
        local_processes.stop(self.process, timeout_seconds=15)


def start(
    name: str,
    argv: Sequence[str],
    workdir: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Service:
    log = workdir / f"{name}.log"
    process = local_processes.start(argv, cwd=cwd, env={**os.environ, **(env or {})}, output=log)
    return Service(name, process, log)


def wait_http(service: Service, url: str, *, verify: str | bool = True) -> None:
    """Wait until `url` answers 200, or fail with the service's output."""
    try:
        local_processes.wait_for_http(
            url,
            service.process,
            timeout_seconds=STARTUP_SECONDS,
            attempt_timeout_seconds=2,
            ready=lambda response: response.status_code == 200,
            verify=verify,
        )
    except local_processes.NotReady as error:
        raise RuntimeError(f"{service.name}: {error}:\n{service.output()}") from None


def run(argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), capture_output=True, text=True, check=False, timeout=120, **kwargs
    )


def alertmanager_argv(
    workdir: Path, port: int, *, web_config: Path | None = None, config: Path | None = None
) -> list[str]:
    """The repository's Alertmanager (or one with `config`) on 127.0.0.1:`port`, alone."""
    argv = [
        "prometheus-alertmanager",
        f"--config.file={config or MONITORING_DIR / 'alertmanager/alertmanager.yml'}",
        f"--storage.path={workdir / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    if web_config is not None:
        argv.append(f"--web.config.file={web_config}")
    return argv


def write_self_signed_pem(directory: Path) -> tuple[Path, Path]:
    """A certificate for `localhost` valid for 30 days: (cert.pem, cert+key.pem for HAProxy)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_file = directory / "localhost.crt"
    bundle_file = directory / "localhost.pem"
    cert_file.write_bytes(cert_pem)
    bundle_file.write_bytes(cert_pem + key_pem)
    return cert_file, bundle_file


@dataclass
class PostgresCluster:
    """A throw-away PostgreSQL 15 cluster owned by the `postgres` user (initdb refuses root).

    Its directory is made under the system temp dir, not pytest's (which only root may enter).
    """

    port: int
    basedir: Path | None = None
    service: Service | None = None

    @property
    def datadir(self) -> Path:
        assert self.basedir is not None, "start() the cluster first"
        return self.basedir / "data"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres?sslmode=disable"

    def _as_postgres(self, argv: Sequence[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return list(argv)

    def start(self, workdir: Path) -> None:
        self.basedir = Path(tempfile.mkdtemp(prefix="monitoring-test-pg-"))
        self.datadir.mkdir()
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            for path in (self.basedir, self.datadir):
                os.chown(path, account.pw_uid, account.pw_gid)
        initdb = run(
            self._as_postgres(
                [str(PG_BIN / "initdb"), "-D", str(self.datadir), "-A", "trust", "-U", "postgres"]
            )
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed: {initdb.stdout}{initdb.stderr}")
        self.service = start(
            "postgres",
            self._as_postgres(
                [
                    str(PG_BIN / "postgres"),
                    "-D",
                    str(self.datadir),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.datadir),
                    "-c",
                    "listen_addresses=127.0.0.1",
                ]
            ),
            workdir,
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while self.psql("SELECT 1").returncode != 0:
            if time.monotonic() > deadline or self.service.process.poll() is not None:
                raise RuntimeError(f"PostgreSQL did not start:\n{self.service.output()}")
            time.sleep(0.2)

    def psql(self, sql: str) -> subprocess.CompletedProcess[str]:
        return run(
            [
                shutil.which("psql") or "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-Atc",
                sql,
            ]
        )

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
        if self.basedir is not None:
            shutil.rmtree(self.basedir, ignore_errors=True)


def haproxy_config(*, tls_port: int, metrics_port: int, bundle: Path, backend: str) -> str:
    """The edge in miniature: TLS in front of the shop, and HAProxy's Prometheus exporter."""
    return f"""
global
    log stdout format raw local0 warning

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend prometheus
    bind 127.0.0.1:{metrics_port}
    http-request use-service prometheus-exporter if {{ path /metrics }}

frontend public
    bind 127.0.0.1:{tls_port} ssl crt {bundle}
    default_backend shop

backend shop
    option httpchk GET /readyz
    server app-1 {backend} check inter 1s
"""
