"""Throughput at the SLO: the shop's journey mix and single endpoints next to a bare endpoint
on the same server stack and the load generator's own ceiling (a no-op HAProxy).

`python -m bench.slo_throughput` (what `make bench` runs). It starts its own stack on free
loopback ports (partner sandboxes, the shop as in production: gunicorn + uvicorn workers,
seeded; HAProxy answering 200 to everything), or measures a running shop (--target).
Every scenario is run at rising concurrency by Locust (as a library, one process, no think
time); its figure is the highest throughput of a level that kept the SLO gates of
monitoring/slos.yml. Scenarios are interleaved and the whole round repeated; medians with
their spread are printed, with the generator's and the target's CPU next to each figure
(here they share the same cores), and written to reports/bench/<time>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

# Locust patches the process with gevent on import; this module is a benchmark process.
import gevent
import psutil
from locust import FastHttpUser, constant, task
from locust.env import Environment

from bench.figures import Figure, Level, at_slo, interleaved_order, ratio, summarise
from bench.processes import REPO, STARTUP_SECONDS, partner_sandboxes
from loadtests.catalog import TestCatalog
from loadtests.gates import load_gate_spec
from loadtests.journeys import AnonymousShopper, RegisteredShopper, catalog_for
from loadtests.resources import TargetProbe
from loadtests.safety import check_target
from loadtests.summary import machine_description
from local_processes import free_port, start, stop, wait_for_http

SCENARIOS = ("noop", "bare", "product", "search", "cart", "mix")
DESCRIPTIONS = {
    "noop": "no-op target (HAProxy `return 200`): the load generator's own ceiling",
    "bare": "GET /healthz: the shop's server stack without any work",
    "product": "GET /api/products/{sku}: product page (read cache)",
    "search": "GET /api/products?q=: catalog search",
    "cart": "PUT /api/cart/items/{sku}: guest cart write",
    "mix": "the load tests' shopper journey mix (browse ... checkout, TOTP login)",
}
NOOP_HAPROXY = """\
global
    maxconn 4096
defaults
    mode http
    timeout client 30s
    timeout connect 5s
    timeout server 30s
frontend noop
    bind 127.0.0.1:{port}
    http-request return status 200 content-type text/plain string "ok"
"""


# --- the stack ------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    shop_url: str
    noop_url: str


@contextlib.contextmanager
def own_stack(workdir: Path, shop_workers: int, products: int) -> Iterator[Stack]:
    """Partner sandboxes, seeded shop and no-op HAProxy on free loopback ports."""
    started: list[subprocess.Popen[bytes]] = []
    log = (workdir / "stack.log").open("wb")
    try:
        with partner_sandboxes(log) as partners_env:
            shop_port, noop_port = free_port(), free_port()
            env = {
                **os.environ,
                **partners_env,
                "DATABASE_URL": os.environ.get(
                    "BENCH_DATABASE_URL", f"sqlite+aiosqlite:///{workdir / 'shop.db'}"
                ),
                "BIND_HOST": "127.0.0.1",
                "PORT": str(shop_port),
                "WEB_CONCURRENCY": str(shop_workers),
                "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
                "LOG_LEVEL": "WARNING",
                "SEED_PRODUCTS": str(products),
                # the seeded admin account is not used here: a random password, never shown
                "SHOP_ADMIN_PASSWORD": secrets.token_urlsafe(18),
            }
            shop = start(
                [sys.executable, "-m", "app.serve", "--seed-if-empty"], cwd=REPO, env=env,
                output=log,
            )  # fmt: skip
            started.append(shop)
            config = workdir / "noop.cfg"
            config.write_text(NOOP_HAPROXY.format(port=noop_port))
            haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
            noop = start([haproxy, "-f", str(config), "-db"], output=log)
            started.append(noop)
            stack = Stack(f"http://127.0.0.1:{shop_port}", f"http://127.0.0.1:{noop_port}")
            wait_for_http(f"{stack.shop_url}/readyz", shop, timeout_seconds=STARTUP_SECONDS)
            wait_for_http(stack.noop_url, noop, timeout_seconds=STARTUP_SECONDS)
            yield stack
    finally:
        for process in reversed(started):
            stop(process)
        log.close()


# --- what the generator does ------------------------------------------------------


def _catalog(user: FastHttpUser) -> TestCatalog:
    return catalog_for(user.host)


class NoopUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def noop(self) -> None:
        self.client.get("/", name="noop")


class BareUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def bare(self) -> None:
        self.client.get("/healthz", name="/healthz")


class ProductUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def product(self) -> None:
        self.client.get(f"/api/products/{_catalog(self).popular_sku()}", name="/api/products/{sku}")


class SearchUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def search(self) -> None:
        term = random.choice(_catalog(self).search_terms)  # noqa: S311 - test data, not secrets
        self.client.get(f"/api/products?q={term}", name="/api/products?q={query}")


class CartUser(FastHttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        self.cart_id = ""

    @task
    def put_in_cart(self) -> None:
        sku = _catalog(self).stocked_sku()
        headers = {"X-Cart-Id": self.cart_id} if self.cart_id else {}
        quantity = random.randint(1, 3)  # noqa: S311 - test data, not secrets
        with self.client.put(
            f"/api/cart/items/{sku}", json={"quantity": quantity}, headers=headers,
            name="/api/cart/items/{sku}", catch_response=True,
        ) as response:  # fmt: skip
            if response.status_code == 200:
                self.cart_id = response.json()["cart_id"]


class _NoThink:
    wait_time = constant(0)

    def think(self) -> None:
        """Steps of a journey follow each other at once: this measures capacity."""


class MixAnonymous(_NoThink, AnonymousShopper):
    pass


class MixRegistered(_NoThink, RegisteredShopper):
    pass


USERS = {
    "noop": [NoopUser],
    "bare": [BareUser],
    "product": [ProductUser],
    "search": [SearchUser],
    "cart": [CartUser],
    "mix": [MixAnonymous, MixRegistered],
}


# --- measuring --------------------------------------------------------------------


def _snapshot(environment: Environment) -> tuple[int, int, dict[int, int]]:
    total = environment.stats.total
    return total.num_requests, total.num_failures, dict(total.response_times)


def measure(
    scenario: str, host: str, levels: list[int], warmup_s: float, window_s: float
) -> list[Level]:
    """Run `scenario` at each concurrency level in turn; one Level per measured window."""
    from loadtests import histogram

    port = int(host.rsplit(":", 1)[1])
    probe = TargetProbe(host, port, is_local=True, on_this_machine=True, exclude_pids={os.getpid()})
    own = psutil.Process()
    environment = Environment(user_classes=USERS[scenario], host=host, catch_exceptions=True)
    runner = environment.create_local_runner()
    results = []
    try:
        for users in levels:
            runner.start(users, spawn_rate=min(users * 4, 100))
            gevent.sleep(warmup_s)
            before, cpu_before, started = _snapshot(environment), own.cpu_times(), time.monotonic()
            probe.sample()
            gevent.sleep(window_s)
            after, cpu_after = _snapshot(environment), own.cpu_times()
            elapsed = time.monotonic() - started
            reading = probe.sample()
            requests, failures = after[0] - before[0], after[1] - before[1]
            latencies = histogram.subtract(after[2], before[2])
            cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
            results.append(
                Level(
                    users=users,
                    rps=round(requests / elapsed, 1),
                    p95_ms=histogram.percentile_ms(latencies, 0.95),
                    p99_ms=histogram.percentile_ms(latencies, 0.99),
                    error_ratio=failures / requests if requests else 1.0,
                    generator_cpu_pct=round(100 * cpu / elapsed, 1),
                    target_cpu_pct=reading.target_cpu_pct,
                )
            )
    finally:
        runner.quit()
    return results


# --- the run ----------------------------------------------------------------------


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render_table(figures: dict[str, Figure]) -> str:
    noop, bare = figures.get("noop"), figures.get("bare")
    lines = [
        "| scenario | rps at SLO (median) | min-max | spread | shoppers | generator CPU % "
        "| target CPU % | / bare | / no-op |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, fig in figures.items():
        target_cpu = (
            "-" if fig.median_target_cpu_pct is None else f"{fig.median_target_cpu_pct:.0f}"
        )
        lines.append(
            f"| {name} | {fig.median_rps:.0f} | {fig.min_rps:.0f}-{fig.max_rps:.0f} "
            f"| {fig.spread:.0%} | {fig.median_users:g} | {fig.median_generator_cpu_pct:.0f} "
            f"| {target_cpu} | {_fmt_ratio(ratio(fig, bare) if bare else None)} "
            f"| {_fmt_ratio(ratio(fig, noop) if noop else None)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.slo_throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--levels", default="2,8,32", help="concurrent users per level")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each window")
    parser.add_argument("--window", type=float, default=4.0, help="measured seconds per level")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--target", help="a running shop instead of starting one (loopback/lab)")
    parser.add_argument("--shop-workers", type=int, default=2, help="WEB_CONCURRENCY of our shop")
    parser.add_argument("--products", type=int, default=10_000, help="catalog size of our shop")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "bench")
    args = parser.parse_args(argv)
    try:
        levels = sorted({int(v) for v in args.levels.split(",")})
        scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        unknown = sorted(set(scenarios) - set(SCENARIOS))
        if unknown or not scenarios or levels[0] < 1 or args.repetitions < 1:
            raise ValueError(f"unknown scenario(s) {unknown}" if unknown else "nothing to run")
        if args.target:
            check_target(args.target)
    except ValueError as exc:
        print(f"bench: {exc} (scenarios: {', '.join(SCENARIOS)})", file=sys.stderr)
        return 2
    gates = load_gate_spec().overall
    assert gates.p95_ms is not None and gates.p99_ms is not None and gates.error_ratio is not None
    best: dict[str, list[Level | None]] = {s: [] for s in scenarios}
    raw: dict[str, list[list[dict[str, object]]]] = {s: [] for s in scenarios}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, contextlib.ExitStack() as stack:
        if args.target:
            shop_url = args.target.rstrip("/")
            noop_url = stack.enter_context(own_stack_noop_only(Path(tmp)))
        else:
            own = stack.enter_context(own_stack(Path(tmp), args.shop_workers, args.products))
            shop_url, noop_url = own.shop_url, own.noop_url
        print(f"bench: shop {shop_url}, no-op {noop_url}; levels {levels}, "
              f"{args.repetitions} repetitions, SLO p95<={gates.p95_ms:g} ms "
              f"p99<={gates.p99_ms:g} ms errors<={gates.error_ratio:g}", flush=True)  # fmt: skip
        for repetition in range(args.repetitions):
            for scenario in interleaved_order(scenarios, repetition):
                host = noop_url if scenario == "noop" else shop_url
                measured = measure(scenario, host, levels, args.warmup, args.window)
                chosen = at_slo(measured, gates.p95_ms, gates.p99_ms, gates.error_ratio)
                best[scenario].append(chosen)
                raw[scenario].append([asdict(lv) for lv in measured])
                shown = (
                    f"{chosen.rps:.0f} rps at {chosen.users} users" if chosen else "no level held"
                )
                print(f"  run {repetition + 1} {scenario:<8} {shown}", flush=True)
    figures = {s: summarise(s, best[s]) for s in scenarios}
    table = render_table(figures)
    machine = machine_description()
    print(
        f"\nThroughput at the SLO on {machine['cpus']} CPUs, {machine['memory_gib']} GiB "
        f"({machine['processor']}, load average {machine['load_average_1m']} at the end); "
        "generator and shop share the machine:\n"
    )
    print(table)
    for name in scenarios:
        print(f"  {name}: {DESCRIPTIONS[name]}")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({
        "machine": machine, "levels": levels, "repetitions": args.repetitions,
        "window_s": args.window, "warmup_s": args.warmup, "gates": asdict(gates),
        "figures": {s: {**asdict(f), "spread": f.spread} for s, f in figures.items()},
        "levels_measured": raw, "table_markdown": table,
    }, indent=2))  # fmt: skip
    print(f"\nbench: figures in {out}")
    return 0


@contextlib.contextmanager
def own_stack_noop_only(workdir: Path) -> Iterator[str]:
    port = free_port()
    config = workdir / "noop.cfg"
    config.write_text(NOOP_HAPROXY.format(port=port))
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    process = start([haproxy, "-f", str(config), "-db"])
    try:
        wait_for_http(f"http://127.0.0.1:{port}", process, timeout_seconds=STARTUP_SECONDS)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


if __name__ == "__main__":
    raise SystemExit(main())
