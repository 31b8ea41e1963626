"""Real load runs against a real shop (gunicorn + uvicorn workers, SQLite, payment sandbox).

The shop comes from the root conftest's `module_shop_factory`: its own database, so the
orders and accounts these runs create touch no other suite's shop. Runs go
through `python -m loadtests run`, exactly what `make loadtest` calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadtests.catalog import catalog_for, product_count
from loadtests.routes import JOURNEYS, ROUTES
from local_processes import free_port
from tests.conftest import REPO
from tests.loadtests.verdict import assert_ran_and_behaved, behaviour_failures

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def load_target(module_shop_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    db_path = tmp_path_factory.mktemp("loadtest-shop") / "shop.db"
    return module_shop_factory(f"sqlite+aiosqlite:///{db_path}").url


def run_loadtest(
    run_dir: Path, *args: str, env: dict[str, str] | None = None, timeout_seconds: float = 240
) -> tuple[int, str, dict[str, Any] | None]:
    environment = {
        k: v for k, v in os.environ.items() if k not in ("P95_MS", "P99_MS", "ERROR_RATIO")
    }
    completed = subprocess.run(
        [sys.executable, "-m", "loadtests", "run", "--run-dir", str(run_dir), "--quiet", *args],
        cwd=REPO,
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_seconds,
        check=False,
    )
    output = completed.stdout + completed.stderr
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return completed.returncode, output, summary


def test_every_journey_route_is_in_the_shops_openapi(load_target: str):
    spec = httpx.get(f"{load_target}/openapi.json", timeout=10).json()
    missing = [
        f"{r.method} {r.path}"
        for r in ROUTES
        if r.method.lower() not in spec["paths"].get(r.path, {})
    ]
    assert missing == []


def test_test_data_matches_the_seeded_shop(load_target: str):
    catalog = catalog_for(load_target)
    assert len(catalog.skus) == product_count(load_target)
    for sku in catalog.stocked_skus[:5]:
        product = httpx.get(f"{load_target}/api/products/{sku}", timeout=10).json()
        assert product["sku"] == sku and product["in_stock"]
    listing = httpx.get(
        f"{load_target}/api/products", params={"q": catalog.search_terms[0]}, timeout=10
    ).json()
    assert listing["total"] >= 1


def test_smoke_with_two_workers_passes_every_gate_but_latency(load_target: str, tmp_path: Path):
    code, output, summary = run_loadtest(
        tmp_path, "--profile", "smoke", "--target", load_target, "--workers", "2"
    )
    assert summary is not None, output
    assert_ran_and_behaved(code, output)
    assert behaviour_failures(summary["failed_gates"]) == []
    assert summary["workers"] == 2 and summary["workers_seen"] == 2
    assert summary["overall"]["failures"] == 0
    exercised = {j for j, m in summary["journeys"].items() if m["requests"]}
    # Every registered shopper registers, logs in with TOTP and buys first thing.
    assert {"account", "login", "checkout", "browse", "product"} <= exercised
    assert exercised <= set(JOURNEYS)  # no request under an unknown name
    gate_names = {g["gate"] for g in summary["gates"]}
    assert {
        "overall.p95_ms",
        "overall.p99_ms",
        "overall.error_ratio",
        "throughput.hold",
    } <= gate_names


def _fraud_decisions(metrics_text: str) -> dict[str, float]:
    decisions: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if line.startswith("shop_fraud_decisions_total{"):
            labels, value = line.rsplit(" ", 1)
            decisions[labels.split('decision="')[1].split('"')[0]] = float(value)
    return decisions


def test_shoppers_answer_the_risk_checks_step_up_with_their_totp_code(
    shop_factory: Any, tmp_path: Path
):
    """Production velocity limits, and every new account's order counts as large: each
    first checkout is challenged, and the shoppers' journeys must get through it."""
    production_limits = {
        "PARTNERS_FRAUD__MAX_ORDERS_PER_IP": "8",
        "PARTNERS_FRAUD__MAX_ORDERS_PER_PAYMENT_TOKEN": "3",
        "PARTNERS_FRAUD__MAX_ORDERS_PER_ACCOUNT": "5",
        "PARTNERS_FRAUD__LARGE_ORDER_MINOR": "1",
    }
    shop = shop_factory(f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}", extra_env=production_limits)
    code, output, summary = run_loadtest(
        tmp_path / "run", "--profile", "smoke", "--target", shop.url
    )
    assert summary is not None, output
    assert_ran_and_behaved(code, output)
    assert summary["overall"]["failures"] == 0
    decisions = _fraud_decisions(httpx.get(f"{shop.url}/metrics", timeout=10).text)
    assert decisions.get("challenge", 0) >= 1, decisions
    assert decisions.get("block", 0) == 0, decisions


def test_an_impossible_gate_fails_the_run_and_is_named(load_target: str, tmp_path: Path):
    code, output, summary = run_loadtest(
        tmp_path,
        "--profile",
        "smoke",
        "--target",
        load_target,
        "--duration",
        "8s",
        env={"P95_MS": "1"},
    )
    assert code == 1, output
    assert summary is not None and not summary["passed"]
    assert "overall.p95_ms" in summary["failed_gates"]
    assert "FAIL overall.p95_ms" in output
    assert "failed gate(s): " in output and "overall.p95_ms" in output.split("failed gate(s): ")[-1]
    # the run folder has everything a reader needs
    for name in (
        "report.html",
        "locust_stats.csv",
        "locust_stats_history.csv",
        "summary.json",
        "plot.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_shortened_step_run_reports_the_knee(load_target: str, tmp_path: Path):
    code, output, summary = run_loadtest(
        tmp_path,
        "--profile", "step",
        "--target", load_target,
        *("--set", "steps=4", "--set", "start_rps=4", "--set", "step_rps=6"),
        *("--set", "step_s=12", "--set", "settle_s=4", "--set", "spawn_s=2"),
    )  # fmt: skip
    assert summary is not None, output
    capacity = summary["capacity"]
    assert [s["label"] for s in capacity["steps"]] == ["step 1", "step 2", "step 3", "step 4"]
    assert all(s["requests"] > 0 for s in capacity["steps"])
    assert (tmp_path / "plot.png").stat().st_size > 10_000
    report = (tmp_path / "capacity.md").read_text()
    assert "Resource that ran out:" in report
    knee = capacity["knee_rps"]
    # Whether a step held depends on this machine's load; the report must say which.
    if knee is None:
        assert "**Knee: none**" in report and "Knee: none" in output
    else:
        assert f"**Knee: {knee:.1f} rps** held within the SLO ({capacity['knee_step']}" in report
        assert f"Knee: {knee:.1f} rps ({capacity['knee_step']})" in output
        assert "Headroom against the peak target" in report
    # The step profile is judged on capacity, not on the SLO of its breaking steps.
    gate = next(g for g in summary["gates"] if g["gate"] == "capacity.knee_rps")
    assert gate["passed"] == (knee is not None and knee >= capacity["peak_rps"])
    assert code == (0 if summary["passed"] else 1)


def test_a_foreign_target_is_refused_before_any_request(tmp_path: Path):
    code, output, summary = run_loadtest(tmp_path, "--target", "http://192.0.2.10:8000")
    assert code == 2
    assert "refusing to load http://192.0.2.10:8000" in output and "--i-own-this-target" in output
    assert summary is None


def test_a_target_that_is_down_is_refused_with_the_reason(tmp_path: Path):
    port = free_port()
    code, output, summary = run_loadtest(tmp_path, "--target", f"http://127.0.0.1:{port}")
    assert code == 2
    assert "not ready for shoppers" in output and "Connection refused" in output
    assert summary is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "blackfriday"], "unknown profile 'blackfriday'"),
        (["--duration", "soon"], "duration 'soon'"),
        (["--gate", "chekout.p95_ms=5"], "unknown journey(s) chekout"),
        (["--set", "steps=1", "--profile", "step"], "steps"),
    ],
)
def test_bad_arguments_are_refused_with_a_message(tmp_path: Path, args: list[str], message: str):
    code, output, _ = run_loadtest(tmp_path, *args)
    assert code == 2
    assert message in output
