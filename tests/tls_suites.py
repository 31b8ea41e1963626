"""The TLS 1.2 suites the tests offer to a server, and a handshake that says which one it
agreed: what testssl calls obsolete CBC suites must be refused, the AEAD ones agreed.

Used by the unit tests (the shop and the sandboxes on loopback) and the lab tests (the
edge, the partners host, Redis), so every hop is checked against the same lists."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
from pathlib import Path

from local_processes import free_port, start, wait_for_port
from tests.certificates import issue_ca_and_server_cert

# CBC suites with SHA-1 or SHA-2 MACs, for RSA and ECDSA certificates alike.
CBC_SUITES = ":".join(
    [
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-RSA-AES256-SHA",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-ECDSA-AES128-SHA256",
        "ECDHE-RSA-AES128-SHA256",
        "AES256-SHA",
        "AES128-SHA",
    ]
)
AEAD_SUITES = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)


def agreed_suite(host: str, port: int, suites: str, *, timeout: float = 5.0) -> str | None:
    """Offer only `suites` over TLS 1.2 to host:port: the suite the server chose, or None
    when it refused the handshake. Certificates are not checked: this asks what is
    offered, not whom we talk to."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    # level 0: let the client offer the obsolete suites it is asking about
    context.set_ciphers(f"{suites}:@SECLEVEL=0")
    with socket.create_connection((host, port), timeout=timeout) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                cipher = tls.cipher()
        except (ssl.SSLError, ConnectionResetError):
            return None
    return cipher[0] if cipher else None


def s_client_command(
    host: str, port: int, suites: str, *, starttls: str | None = None
) -> list[str]:
    """`openssl s_client` offering only `suites` over TLS 1.2 (for a host without Python
    ssl at hand, e.g. inside a lab host); read its output with `suite_in`."""
    command = f"openssl s_client -connect {host}:{port} -servername {host} -tls1_2"
    command += f" -cipher '{suites}:@SECLEVEL=0'"
    if starttls:
        command += f" -starttls {starttls}"
    return ["sh", "-c", f"{command} </dev/null 2>&1"]


def suite_in(s_client_output: str) -> str | None:
    """The suite an `openssl s_client` run agreed, or None when the handshake failed."""
    found = re.search(r"Cipher is (\S+)", s_client_output)
    if found is None or found.group(1) == "(NONE)":
        return None
    return found.group(1)


def start_tls_redis(folder: Path, *redis_args: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    """redis-server on 127.0.0.1 speaking TLS only, with a certificate of a new CA made in
    `folder` and `redis_args` added: (the process, its port, the CA file)."""
    ca, cert, key = issue_ca_and_server_cert(folder)
    port = free_port()
    process = start(
        [
            "redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
            "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
            "--save", "", "--appendonly", "no", *redis_args,
        ],
        output=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(port, process, timeout_seconds=20)
    return process, port, ca
