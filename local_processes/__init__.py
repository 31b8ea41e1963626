"""Starting and stopping local server processes on loopback, for tests, benchmarks and load tests.

The test suite (tests/), the benchmarks (bench/) and the load-test runner
(loadtests/) all start real servers on this machine: the shop, the partner
sandboxes, PostgreSQL, Redis, exporters, HAProxy, Locust masters and workers.
Each gets a free loopback port, is waited for until it answers, and is stopped
at the end (terminated, then killed if it does not stop in time). This module
is the one copy of how that is done; the shop itself never imports it.

httpx is imported only by `wait_for_http`, so that `python -m loadtests` and
Locust start without it.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

    import httpx

LOOPBACK = "127.0.0.1"

# Where a started process's stdout and stderr go: None leaves both to this
# process's; a Path is a log file (created or truncated) that gets both; an open
# binary file or subprocess.DEVNULL gets both too.
Output = Path | IO[bytes] | int | None

__all__ = [
    "LOOPBACK",
    "NotReady",
    "Output",
    "answered",
    "free_port",
    "start",
    "stop",
    "wait_for_http",
    "wait_for_port",
]


class NotReady(RuntimeError):
    """A server did not answer in time, or its process exited before it did."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nothing listens on right now (the OS picks it), for a server to bind."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start(
    argv: Sequence[str | PathLike[str]],
    *,
    cwd: str | PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    output: Output = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` (no shell) and return at once; wait for it with `wait_for_*`.

    `env` is the child's whole environment, as for subprocess (None: this
    process's). `output` says where stdout and stderr go (see `Output`).
    """
    command = list(argv)
    if output is None:
        return subprocess.Popen(command, cwd=cwd, env=env)  # noqa: S603 - callers' own commands
    if isinstance(output, Path):
        with output.open("wb") as log:
            return subprocess.Popen(  # noqa: S603 - callers' own commands
                command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
            )
    return subprocess.Popen(  # noqa: S603 - callers' own commands
        command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT
    )


def _check_running(process: subprocess.Popen[Any] | None, what: str) -> None:
    if process is not None and process.poll() is not None:
        raise NotReady(f"the process serving {what} exited with {process.returncode}")


def wait_for_port(
    port: int,
    process: subprocess.Popen[Any] | None = None,
    *,
    host: str = LOOPBACK,
    timeout_seconds: float = 60,
    interval_seconds: float = 0.05,
    attempt_timeout_seconds: float = 1.0,
    probe: Callable[[socket.socket], bool] | None = None,
) -> None:
    """Until a TCP connection to `host:port` succeeds (and `probe(connected socket)` is true).

    A `process` that exits first is an error (NotReady), as is the timeout.
    """
    what = f"{host}:{port}"
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        _check_running(process, what)
        with (
            contextlib.suppress(OSError),
            socket.create_connection((host, port), attempt_timeout_seconds) as sock,
        ):
            if probe is None or probe(sock):
                return
        time.sleep(interval_seconds)
    raise NotReady(f"{what} did not answer within {timeout_seconds:g} s")


def answered(response: httpx.Response) -> bool:
    """The default readiness test: any answer below 500 (a 404 still means it is serving)."""
    return response.status_code < 500


def wait_for_http(
    url: str,
    process: subprocess.Popen[Any] | None = None,
    *,
    timeout_seconds: float = 60,
    interval_seconds: float = 0.2,
    attempt_timeout_seconds: float = 1.0,
    ready: Callable[[httpx.Response], bool] = answered,
    verify: ssl.SSLContext | str | bool = True,
) -> None:
    """Until a GET of `url` gives a response `ready` accepts (default: below 500).

    A `process` that exits first is an error (NotReady), as is the timeout;
    the message names the last answer or connection error.
    """
    import httpx

    deadline = time.monotonic() + timeout_seconds
    last = "no attempt"
    while time.monotonic() < deadline:
        _check_running(process, url)
        try:
            response = httpx.get(url, timeout=attempt_timeout_seconds, verify=verify)
        except httpx.HTTPError as error:
            last = str(error) or type(error).__name__
        else:
            if ready(response):
                return
            last = f"HTTP {response.status_code}"
        time.sleep(interval_seconds)
    raise NotReady(f"{url} did not answer within {timeout_seconds:g} s (last: {last})")


def stop(process: subprocess.Popen[Any], timeout_seconds: float = 30) -> int:
    """Terminate (SIGTERM) and wait up to `timeout_seconds`, then kill; returns the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
