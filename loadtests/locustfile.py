"""The shop's load test: `locust -f loadtests/locustfile.py --load-profile smoke --host URL`.

Usually started by `make loadtest` (python -m loadtests run), which adds the
run folder, Locust's HTML and CSV reports and distributed workers. Run directly,
it does the same checks: the target must be ours (loopback or the lab) unless
--i-own-this-target, the profile's shape drives the shoppers, and at the end the
SLO gates decide the exit code (0 pass, 1 a gate failed).
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from locust import events
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests import safety
from loadtests.config import REPO_ROOT, ConfigError, load_profiles, parse_duration
from loadtests.gates import load_gate_spec, parse_overrides
from loadtests.journeys import LEDGER, AnonymousShopper, RegisteredShopper  # noqa: F401
from loadtests.phases import plan
from loadtests.recorder import RunRecorder
from loadtests.resources import TargetProbe
from loadtests.routes import JOURNEYS
from loadtests.shape import ProfileShape  # noqa: F401
from loadtests.summary import RunContext, verdict_text, write_reports

log = logging.getLogger("loadtests")
EXIT_REFUSED = 2


@events.init_command_line_parser.add_listener
def _add_arguments(parser: LocustArgumentParser) -> None:
    group = parser.add_argument_group("shop load test (loadtests/)")
    # Locust has its own --profile (a label for runs): ours is --load-profile.
    group.add_argument(
        "--load-profile", default="smoke", help="load profile from loadtests/profiles.yml"
    )
    group.add_argument(
        "--duration", default="", help="scale the whole profile to this duration (90s, 2m, 1h30m)"
    )
    group.add_argument(
        "--set",
        dest="profile_set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override one field of the profile for this run (repeatable)",
    )
    group.add_argument(
        "--gate",
        action="append",
        default=[],
        metavar="[JOURNEY.]METRIC=VALUE",
        help="override an SLO gate (p95_ms, p99_ms, error_ratio); repeatable",
    )
    group.add_argument("--run-dir", default="", help="folder for the summary, plot and reports")
    group.add_argument(
        safety.OWNED_FLAG,
        dest="owned_target",
        action="store_true",
        default=False,
        help="allow a target outside loopback and the lab: you own it and mean to load it",
    )
    group.add_argument(
        "--sample-interval", type=float, default=2.0, help="seconds between two recorder readings"
    )


class _Run:
    """What the master (or the single local process) keeps between start-up and quitting."""

    context: RunContext | None = None
    recorder: RunRecorder | None = None


def _build_context(environment: Environment) -> RunContext:
    options = environment.parsed_options
    book = load_profiles()
    name, _ = book.resolve(options.load_profile)
    settings = dict(item.split("=", 1) for item in options.profile_set if "=" in item)
    if len(settings) != len(options.profile_set):
        raise ConfigError(f"--set takes FIELD=VALUE, got {options.profile_set}")
    profile = book.with_overrides(name, settings)
    duration = parse_duration(options.duration) if options.duration else None
    overrides = parse_overrides(options.gate)
    unknown = sorted(set(overrides) - {"overall", *JOURNEYS})
    if unknown:
        raise ConfigError(f"gate override for unknown journey(s) {unknown}; journeys: {JOURNEYS}")
    run_dir = (
        Path(options.run_dir)
        if options.run_dir
        else REPO_ROOT / "reports" / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{name}"
    )
    return RunContext(
        profile_name=name,
        profile=profile,
        book=book,
        phases=plan(profile, book.traffic, duration),
        spec=load_gate_spec(overrides),
        target=environment.host or safety.DEFAULT_TARGET,
        workers=options.expect_workers if options.master else 0,
        run_dir=run_dir,
        duration_override_s=duration,
    )


@events.init.add_listener
def _on_init(environment: Environment, **_: object) -> None:
    if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
        return  # workers only run shoppers; the master plans, records and judges
    options = environment.parsed_options
    owned = options.owned_target or os.environ.get(safety.OWNED_ENV) == "1"
    try:
        target = safety.check_target(environment.host or safety.DEFAULT_TARGET, owned=owned)
        context = _build_context(environment)
    except (ValueError, ConfigError) as exc:
        log.error("%s", exc)
        sys.exit(EXIT_REFUSED)
    if target.owned_override:
        log.warning("loading %s because the operator says they own it", target.url)
    environment.host = target.url
    environment.shape_class.phases = context.phases
    probe = TargetProbe(
        target.url,
        target.port,
        is_local=target.is_local,
        on_this_machine=target.on_this_machine,
        exclude_pids={os.getpid()},
    )
    _Run.context = context
    _Run.recorder = RunRecorder(environment, context.phases, probe, options.sample_interval)
    log.info(
        "profile %s against %s: %d phase(s), %.0f s, reports in %s",
        context.profile_name,
        target.url,
        len(context.phases),
        context.phases[-1].end_s,
        context.run_dir,
    )


@events.request.add_listener
def _on_request(
    name: str,
    response_time: float,
    start_time: float,
    response: object = None,
    exception: BaseException | None = None,
    **_: object,
) -> None:
    if LEDGER is not None:
        status = getattr(response, "status_code", 0) or 0
        LEDGER.request(name, start_time, response_time, status, exception and str(exception))


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: object) -> None:
    if _Run.recorder is not None and not isinstance(environment.runner, WorkerRunner):
        _Run.recorder.start()


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: object) -> None:
    context, recorder = _Run.context, _Run.recorder
    if context is None or recorder is None:
        return
    recorder.stop()
    stats = environment.stats
    runner = environment.runner
    elapsed = environment.shape_class.get_run_time() if environment.shape_class else 0.0
    requests_per_s, failures_per_s = recorder.per_second()
    passed, gates, summary = write_reports(
        context,
        entries=list(stats.entries.values()),
        total=stats.total,
        elapsed_s=min(elapsed, context.phases[-1].end_s) if elapsed else 0.0,
        exceptions=sum(e["count"] for e in runner.exceptions.values()) if runner else 0,
        windows=recorder.windows(),
        timeline=recorder.timeline_rows(),
        workers_seen=recorder.workers_seen,
        wall_start=recorder.wall_start,
        requests_per_s=requests_per_s,
        failures_per_s=failures_per_s,
    )
    print(verdict_text(passed, gates, context.run_dir, summary), flush=True)
    environment.process_exit_code = 0 if passed else 1
