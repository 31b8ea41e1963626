"""Run podman with the global flags that work on this kind of machine.

crun fails on hybrid cgroup layouts, so every call uses runc and cgroupfs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

GLOBAL_FLAGS = ("--runtime", "runc", "--cgroup-manager=cgroupfs")
# The default ulimits are refused on this kind of machine ("error setting rlimit type 7:
# operation not permitted"), so every `podman run` sets them explicitly.
RUN_ULIMITS = ("--ulimit=nofile=20000:20000", "--ulimit=nproc=4096:4096")


class PodmanError(RuntimeError):
    """A podman command failed; the message carries the command and its stderr."""


def binary() -> str:
    found = shutil.which("podman")
    if found is None:
        raise PodmanError(
            "podman is not installed (make deps installs it from scripts/apt-packages.txt)"
        )
    return found


def run(
    args: Sequence[str],
    *,
    check: bool = True,
    input_bytes: bytes | None = None,
    timeout: float | None = 600,
) -> subprocess.CompletedProcess[str]:
    command = [binary(), *GLOBAL_FLAGS, *args]
    result = subprocess.run(  # noqa: S603 - the command is built from fixed flags and our own names
        command,
        input=input_bytes.decode() if input_bytes is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise PodmanError(
            f"podman {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
        )
    return result


def run_json(args: Sequence[str]) -> Any:
    out = run(args).stdout.strip()
    return json.loads(out) if out else []


def exists(kind: str, name: str) -> bool:
    """kind: container, network or image."""
    return run([kind, "exists", name], check=False).returncode == 0


def exec_in(
    container: str, command: Sequence[str], *, check: bool = True, timeout: float | None = 120
) -> subprocess.CompletedProcess[str]:
    return run(["exec", container, *command], check=check, timeout=timeout)


def containers_with_label(label: str) -> list[dict[str, Any]]:
    return run_json(["ps", "-a", "--filter", f"label={label}", "--format", "json"])


def networks_with_label(label: str) -> list[str]:
    out = run(["network", "ls", "--filter", f"label={label}", "--format", "{{.Name}}"]).stdout
    return [line for line in out.splitlines() if line]
