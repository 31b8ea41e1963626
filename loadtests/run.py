"""`python -m loadtests run`: one load test, start to verdict, with its reports in a run folder.

Checks the target and the profile before sending anything, starts Locust
(one process, or a master and N workers on this machine), bounds the run in
time, and exits with Locust's verdict: 0 all gates passed, 1 a gate failed,
2 refused (bad target, profile or override), 3 the run did not complete.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from loadtests import safety
from loadtests.catalog import CatalogUnavailable, product_count
from loadtests.config import PACKAGE_DIR, REPO_ROOT, ConfigError, load_profiles, parse_duration
from loadtests.gates import ENV_OVERRIDES, load_gate_spec, parse_overrides
from loadtests.phases import plan
from loadtests.reportfiles import CSV_PREFIX, HTML_FILE, SUMMARY_FILE
from loadtests.routes import JOURNEYS
from local_processes import free_port, start, stop

LOCUSTFILE = PACKAGE_DIR / "locustfile.py"
EXIT_REFUSED = 2
EXIT_INCOMPLETE = 3
# Past the planned duration: start-up, workers connecting, reports being written.
GRACE_S = 90.0
WORKER_CONNECT_WAIT_S = 60


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtests", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run one profile against a target")
    run.add_argument("--profile", default="smoke", help="profile name (see `profiles`)")
    run.add_argument("--target", default=safety.DEFAULT_TARGET, help="base URL of the shop")
    run.add_argument("--workers", type=int, default=0, help="0: one process; N: master + N workers")
    run.add_argument("--duration", default="", help="scale the profile to this duration (2m, 90s)")
    run.add_argument(
        "--set",
        dest="profile_set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override one profile field for this run, e.g. --set steps=4 (repeatable)",
    )
    run.add_argument(
        "--gate",
        action="append",
        default=[],
        metavar="[JOURNEY.]METRIC=VALUE",
        help="override a gate: p95_ms=300, checkout.p99_ms=1500, error_ratio=0.01",
    )
    run.add_argument("--p95-ms", type=float, help="overall p95 gate (also env P95_MS)")
    run.add_argument("--p99-ms", type=float, help="overall p99 gate (also env P99_MS)")
    run.add_argument(
        "--error-ratio", type=float, help="overall error ratio gate (also env ERROR_RATIO)"
    )
    run.add_argument(
        safety.OWNED_FLAG,
        dest="owned",
        action="store_true",
        help=f"allow a target outside loopback and the lab (also env {safety.OWNED_ENV}=1)",
    )
    run.add_argument("--reports-dir", type=Path, default=REPO_ROOT / "reports")
    run.add_argument(
        "--run-dir", type=Path, help="exact run folder (default: reports/<time>-<profile>)"
    )
    run.add_argument("--quiet", action="store_true", help="no live statistics, only the summary")

    commands.add_parser("profiles", help="list the profiles and their phases")
    return parser


def _gate_args(args: argparse.Namespace) -> list[str]:
    """Every gate override as --gate arguments: environment first, so the command line wins."""
    gates = [
        f"{metric}={os.environ[variable].strip()}"
        for variable, metric in ENV_OVERRIDES.items()
        if os.environ.get(variable, "").strip()
    ]
    gates += args.gate
    for flag, metric in (
        ("p95_ms", "p95_ms"),
        ("p99_ms", "p99_ms"),
        ("error_ratio", "error_ratio"),
    ):
        value = getattr(args, flag)
        if value is not None:
            gates.append(f"{metric}={value:g}")
    return gates


def _validate(args: argparse.Namespace) -> tuple[safety.Target, str, float]:
    """Everything that can be refused before a single request; returns target, profile, seconds."""
    if args.workers < 0:
        raise ConfigError("--workers must be 0 (one process) or more")
    owned = args.owned or os.environ.get(safety.OWNED_ENV) == "1"
    target = safety.check_target(args.target, owned=owned)
    book = load_profiles()
    name, _ = book.resolve(args.profile)
    settings = {}
    for item in args.profile_set:
        field, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r} is not FIELD=VALUE")
        settings[field.strip()] = value.strip()
    profile = book.with_overrides(name, settings)
    duration = parse_duration(args.duration) if args.duration else None
    parse_overrides([])  # names a bad P95_MS/P99_MS/ERROR_RATIO by its variable
    overrides = parse_overrides(_gate_args(args), environ={})
    unknown = sorted(set(overrides) - {"overall", *JOURNEYS})
    if unknown:
        raise ConfigError(
            f"gate override for unknown journey(s) {', '.join(unknown)}; "
            f"journeys: {', '.join(JOURNEYS)}"
        )
    load_gate_spec(overrides)
    phases = plan(profile, book.traffic, duration)
    return target, name, phases[-1].end_s


def _locust_command(args: argparse.Namespace, target: str, run_dir: Path) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        target,
        "--load-profile",
        args.profile,
        "--run-dir",
        str(run_dir),
        "--html",
        str(run_dir / HTML_FILE),
        "--csv",
        str(run_dir / CSV_PREFIX),
    ]
    if args.duration:
        command += ["--duration", args.duration]
    for item in args.profile_set:
        command += ["--set", item]
    for gate in _gate_args(args):
        command += ["--gate", gate]
    if args.owned or os.environ.get(safety.OWNED_ENV) == "1":
        command.append(safety.OWNED_FLAG)
    if args.quiet:
        command.append("--only-summary")
    return command


def _run_processes(args: argparse.Namespace, command: list[str], deadline_s: float) -> int:
    env = dict(os.environ)
    # Gate values travel as --gate arguments; the environment must not apply them twice.
    for variable in ENV_OVERRIDES:
        env.pop(variable, None)
    workers: list[subprocess.Popen[bytes]] = []
    if args.workers:
        port = free_port()
        master_cmd = [
            *command,
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(port),
            "--expect-workers",
            str(args.workers),
            "--expect-workers-max-wait",
            str(WORKER_CONNECT_WAIT_S),
        ]
        master = start(master_cmd, cwd=REPO_ROOT, env=env)
        worker_cmd = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--worker",
            "--master-host",
            "127.0.0.1",
            "--master-port",
            str(port),
        ]
        workers = [start(worker_cmd, cwd=REPO_ROOT, env=env) for _ in range(args.workers)]
    else:
        master = start(command, cwd=REPO_ROOT, env=env)
    try:
        code = master.wait(timeout=deadline_s)
    except subprocess.TimeoutExpired:
        print(f"loadtests: the run exceeded {deadline_s:.0f} s; stopping it", file=sys.stderr)
        stop(master, timeout_seconds=30)
        code = EXIT_INCOMPLETE
    except KeyboardInterrupt:
        stop(master, timeout_seconds=30)
        raise
    finally:
        for worker in workers:
            try:
                worker.wait(15)  # workers quit when the master tells them
            except subprocess.TimeoutExpired:
                stop(worker, timeout_seconds=5)
    return code


def run(args: argparse.Namespace) -> int:
    try:
        target, name, planned_s = _validate(args)
    except (ValueError, ConfigError) as exc:
        print(f"loadtests: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    try:
        product_count(target.url)  # up, and serving a seeded catalog the journeys can use
    except CatalogUnavailable as exc:
        print(f"loadtests: the target is not ready for shoppers: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    run_dir = args.run_dir or args.reports_dir / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{name}"
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"loadtests: {name} against {target.url} for {planned_s:.0f} s -> {run_dir}", flush=True)
    started = time.monotonic()
    code = _run_processes(args, _locust_command(args, target.url, run_dir), planned_s + GRACE_S)
    summary_path = run_dir / SUMMARY_FILE
    if code not in (0, 1) or not summary_path.exists():
        print(
            f"loadtests: the run did not complete (Locust exit code {code}); see the output above",
            file=sys.stderr,
        )
        return code if code == EXIT_REFUSED else EXIT_INCOMPLETE
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    failed = summary["failed_gates"]
    print(
        f"loadtests: {'PASS' if summary['passed'] else 'FAIL'} "
        f"in {time.monotonic() - started:.0f} s"
        + (f"; failed gate(s): {', '.join(failed)}" if failed else "")
        + f"; reports in {run_dir}",
        flush=True,
    )
    return 0 if summary["passed"] else 1


def list_profiles() -> int:
    book = load_profiles()
    print(
        f"think time {book.traffic.think_time_s} s, "
        f"logged-in share {book.traffic.logged_in_share:.0%}"
    )
    for name in sorted(book.profiles):
        profile = book.profiles[name]
        phases = plan(profile, book.traffic)
        print(f"\n{name}: {profile.description} ({phases[-1].end_s:.0f} s)")
        for phase in phases:
            load = f"~{phase.offered_rps:.0f} rps offered" if phase.offered_rps else "ramping up"
            print(
                f"  {phase.label:<8} {phase.start_s:>6.0f}-{phase.end_s:<6.0f} s  "
                f"{phase.users:>4} shoppers  {load}"
            )
    for alias, target in sorted(book.aliases.items()):
        print(f"\n{alias}: same as {target}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "profiles":
        return list_profiles()
    return run(args)
