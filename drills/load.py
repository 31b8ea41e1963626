"""The shoppers a drill runs under: Locust's journeys (loadtests/, profile `drill`: a
steady mix with registrations, logins and checkouts) through the lab's edge, with the
ledger on (loadtests/ledger.py) so every answer a customer got is on record.

It runs as its own Locust process for the whole drill; the drill stops it once the
alert has resolved (SIGTERM: Locust stops its users and writes its reports), and the
experiment's rollback stops it too if the drill broke off."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from loadtests import ledger

from . import lab_access

PROFILE = "drill"
LOCUSTFILE = lab_access.REPO / "loadtests" / "locustfile.py"
STOP_WAIT_S = 90

_running: dict[Path, subprocess.Popen[bytes]] = {}


def start(drill_dir: Path) -> dict[str, object]:
    """Start the shoppers against the edge; their records go under `drill_dir`/load."""
    run_dir = drill_dir / "load"
    run_dir.mkdir(parents=True, exist_ok=True)
    target = lab_access.url("edge_https").rstrip("/")
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--host", target, "--load-profile", PROFILE, "--run-dir", str(run_dir),
        "--csv", str(run_dir / "locust"), "--only-summary",
    ]  # fmt: skip
    env = {**os.environ, ledger.LEDGER_ENV: str(run_dir)}
    with (run_dir / "locust.log").open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own command
            command, cwd=lab_access.REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    _running[drill_dir] = process
    (run_dir / "locust.pid").write_text(str(process.pid), encoding="utf-8")
    return {"pid": process.pid, "target": target, "started_at": time.time()}


def stop(drill_dir: Path) -> dict[str, object]:
    """Stop the shoppers (no-op when they are not running); returns Locust's exit code."""
    process = _running.pop(drill_dir, None)
    pid_file = drill_dir / "load" / "locust.pid"
    if process is None:
        if pid_file.exists():  # started by another process (a broken-off run)
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            pid_file.unlink()
        return {"stopped": False}
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    pid_file.unlink(missing_ok=True)
    return {"stopped": True, "exit_code": code, "stopped_at": time.time()}


def is_running(drill_dir: Path) -> bool:
    process = _running.get(drill_dir)
    return process is not None and process.poll() is None
