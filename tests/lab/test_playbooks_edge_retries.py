"""The edge never sends a non-idempotent request twice: a POST that reached an app server
and got no answer may have been carried out (an order placed, a card charged), so HAProxy
answers 502 rather than trying the next server; a GET in the same case is retried.

No lab needed: Ansible renders the edge role's own haproxy.cfg (its defaults, a loopback
inventory), and a real HAProxy runs it in front of two app servers on 127.0.0.2 and
127.0.0.3 that answer their health checks and close every other request unanswered."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from local_processes import free_port, start, stop, wait_for_port
from tests.certificates import issue_ca_and_server_cert
from tests.role_templates import render_role_template

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
BIN = Path(sys.executable).parent
APP_ADDRESSES = ("127.0.0.2", "127.0.0.3")


@dataclass
class SilentAppServers:
    """App servers that pass health checks and hang up on every other request."""

    port: int
    received: list[str] = field(default_factory=list)
    _sockets: list[socket.socket] = field(default_factory=list)

    def start(self) -> None:
        for address in APP_ADDRESSES:
            listener = socket.create_server((address, self.port))
            self._sockets.append(listener)
            threading.Thread(target=self._serve, args=(listener,), daemon=True).start()

    def _serve(self, listener: socket.socket) -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                request_line = _read_request(connection)
                if request_line.startswith("GET /readyz "):
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                else:
                    self.received.append(request_line)  # and close: an empty response

    def close(self) -> None:
        for listener in self._sockets:
            listener.close()


def _read_request(connection: socket.socket) -> str:
    """Read one whole request (head and Content-Length body): its request line."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        (
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    return lines[0]


def _render_edge_config(folder: Path, https_port: int, app_port: int, bundle: Path) -> Path:
    app_servers = {
        f"app-{n}": {"service_address": address, "topology_zone": ""}
        for n, address in enumerate(APP_ADDRESSES, 1)
    }
    inventory = {
        "all": {
            "hosts": {"edge": {"service_address": "127.0.0.1"}},
            "children": {"tier_app": {"hosts": app_servers}},
        }
    }
    overrides = {
        "edge_bind_address": "127.0.0.1",
        "edge_http_port": free_port(),
        "edge_https_port": https_port,
        "edge_metrics_port": free_port(),
        "edge_backend_port": app_port,
        "edge_backend_tls": False,
        "edge_health_interval": "500ms",
        "edge_certificate_bundle": str(bundle),
        "edge_stats_socket": str(folder / "admin.sock"),
    }
    return render_role_template(
        "edge", "haproxy.cfg.j2", folder, overrides, inventory=inventory, host="edge"
    )


@pytest.fixture
def edge_before_silent_servers(tmp_path: Path) -> Iterator[tuple[httpx.Client, SilentAppServers]]:
    ca, cert, key = issue_ca_and_server_cert(tmp_path)
    bundle = tmp_path / "edge.pem"
    bundle.write_text(cert.read_text() + key.read_text())
    servers = SilentAppServers(free_port())
    servers.start()
    https_port = free_port()
    config = _render_edge_config(tmp_path, https_port, servers.port, bundle)
    haproxy = start(["haproxy", "-db", "-f", str(config)], output=subprocess.DEVNULL)
    try:
        wait_for_port(https_port, haproxy, timeout_seconds=20)
        tls = ssl.create_default_context(cafile=str(ca))
        with httpx.Client(
            base_url=f"https://127.0.0.1:{https_port}", verify=tls, timeout=20
        ) as edge:
            yield edge, servers
    finally:
        stop(haproxy)
        servers.close()


def test_a_post_that_got_no_answer_is_not_sent_again(edge_before_silent_servers) -> None:
    """A cancellation (a POST without a body, which HAProxy would otherwise resend) refunds
    once: one attempt, then 502."""
    edge, servers = edge_before_silent_servers
    answer = edge.post("/api/orders/42/cancel")
    assert answer.status_code == 502
    assert servers.received == ["POST /api/orders/42/cancel HTTP/1.1"]


def test_a_post_with_a_body_that_got_no_answer_reaches_one_server_once(
    edge_before_silent_servers,
) -> None:
    edge, servers = edge_before_silent_servers
    # HAProxy may pass the hang-up on instead of a 502: either way, not resent
    with contextlib.suppress(httpx.RemoteProtocolError):
        edge.post("/api/checkout", json={"cart": "c1"})
    assert servers.received == ["POST /api/checkout HTTP/1.1"]


def test_a_get_that_got_no_answer_is_tried_on_another_server(edge_before_silent_servers) -> None:
    edge, servers = edge_before_silent_servers
    answer = edge.get("/api/products")
    assert answer.status_code == 502
    assert len(servers.received) > 1
    assert set(servers.received) == {"GET /api/products HTTP/1.1"}
