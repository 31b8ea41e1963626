"""The lab CLI's monitoring session trusts the lab's CA, whatever the environment says:
requests lets REQUESTS_CA_BUNDLE override a session's own `verify`, which made every
drill probe and `lab status`'s alert list fail on machines that set it."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.monitoring_access import MonitoringAccess
from tests.certificates import issue_ca_and_server_cert


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    ca, cert, key = issue_ca_and_server_cert(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/", ca
    finally:
        server.shutdown()


def test_the_session_verifies_with_the_lab_ca_despite_requests_ca_bundle(
    https_server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ca = https_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ssl.get_default_verify_paths().openssl_cafile)
    password = tmp_path / "password"
    password.write_text("x" * 32, encoding="utf-8")
    access = MonitoringAccess(ca_file=ca, username="operator", password_file=password)
    with access.session() as session:
        assert session.get(url, timeout=5).text == "ok"
