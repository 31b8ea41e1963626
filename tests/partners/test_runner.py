"""`python -m app.sandbox` as a process, and the knob CLI against it."""

from __future__ import annotations

import smtplib
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.sandbox import knobs
from local_processes import NotReady, free_port, start, stop, wait_for_http

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def running_sandboxes(tmp_path: Path) -> Iterator[dict[str, int]]:
    ports = {name: free_port() for name in ("payments", "couriers", "smtp", "admin")}
    proc = start(
        [sys.executable, "-m", "app.sandbox", "--host", "127.0.0.1", "--log-level", "warning",
         "--maildir", str(tmp_path / "maildir"),
         *(arg for name, port in ports.items() for arg in (f"--{name}-port", str(port)))],
        cwd=REPO,
    )  # fmt: skip
    try:
        wait_for_http(
            f"http://127.0.0.1:{ports['admin']}/healthz",
            proc,
            timeout_seconds=30,
            interval_seconds=0.1,
            ready=lambda response: response.is_success,
        )
    except NotReady as exc:
        stop(proc, timeout_seconds=0)
        raise RuntimeError(f"python -m app.sandbox did not come up: {exc}") from None
    try:
        yield {**ports, "maildir": tmp_path / "maildir"}  # type: ignore[dict-item]
    finally:
        assert stop(proc, timeout_seconds=20) == 0  # SIGTERM: a clean exit within 20 s


def test_one_command_runs_every_sandbox_on_the_given_ports(running_sandboxes: dict):
    ports = running_sandboxes
    charge = httpx.post(
        f"http://127.0.0.1:{ports['payments']}/wallet/v1/charges",
        json={"amount_minor": 500, "currency": "EUR", "token": "wallet_ok",
              "order_reference": "o", "customer_reference": "c"},
        headers={"Idempotency-Key": "runner-1"},
    )  # fmt: skip
    assert charge.status_code == 201
    quote = httpx.post(
        f"http://127.0.0.1:{ports['couriers']}/globex/v1/quotes",
        json={"destination_country": "PL", "weight_grams": 800},
    )
    assert quote.status_code == 200 and quote.json()["zone"] == "europe"
    with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=10) as smtp:
        smtp.sendmail("shop@example.com", ["buyer@example.com"], b"Subject: hello\r\n\r\nhi\r\n")
    admin = f"http://127.0.0.1:{ports['admin']}"
    assert httpx.get(f"{admin}/smtp/messages").json()["items"][0]["subject"] == "hello"
    assert len(list((ports["maildir"] / "new").iterdir())) == 1
    metrics = httpx.get(f"{admin}/metrics").text
    assert 'sandbox_requests_total{outcome="ok",service="wallet"} 1.0' in metrics
    assert 'sandbox_requests_total{outcome="ok",service="smtp"} 1.0' in metrics


def test_knob_cli_turns_and_resets_knobs(
    running_sandboxes: dict, capsys: pytest.CaptureFixture[str]
):
    admin = f"http://127.0.0.1:{running_sandboxes['admin']}"
    assert knobs.main(["--admin", admin, "set", "crypto", "outage=true", "latency_ms=20"]) == 0
    assert '"outage": true' in capsys.readouterr().out
    metrics = httpx.get(f"{admin}/metrics").text
    assert 'sandbox_fault_setting{knob="outage",service="crypto"} 1.0' in metrics
    assert knobs.main(["--admin", admin, "set", "crypto", "error_rate=150"]) == 1
    assert "less than or equal to 100" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="KNOB=VALUE"):
        knobs.main(["--admin", admin, "set", "crypto", "outage"])
    assert knobs.main(["--admin", admin, "reset"]) == 0
    metrics = httpx.get(f"{admin}/metrics").text
    assert 'sandbox_fault_setting{knob="outage",service="crypto"} 0.0' in metrics
