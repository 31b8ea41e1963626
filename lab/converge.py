"""Converge the lab with playbooks/site.yml and read the play recap."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .settings import PLAYBOOKS, LabSettings

RECAP_LINE = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)"
)


@dataclass(frozen=True)
class HostRecap:
    ok: int
    changed: int
    unreachable: int
    failed: int


@dataclass(frozen=True)
class ConvergeResult:
    returncode: int
    recap: dict[str, HostRecap]
    log: Path

    @property
    def changed(self) -> int:
        return sum(r.changed for r in self.recap.values())

    @property
    def succeeded(self) -> bool:
        return (
            self.returncode == 0
            and bool(self.recap)
            and all(r.failed == 0 and r.unreachable == 0 for r in self.recap.values())
        )


def parse_recap(output: str) -> dict[str, HostRecap]:
    recap: dict[str, HostRecap] = {}
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        match = RECAP_LINE.match(line.strip()) if in_recap else None
        if match:
            recap[match["host"]] = HostRecap(
                int(match["ok"]),
                int(match["changed"]),
                int(match["unreachable"]),
                int(match["failed"]),
            )
    return recap


# The venv's ansible-playbook, which must find the venv's modules (topology, cryptography).
ANSIBLE_BIN = Path(sys.executable).parent


def ansible_variables(settings: LabSettings) -> dict[str, str]:
    """What points ansible-playbook at this lab: the converge and the operator's shell."""
    return {
        "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"),
        "ANSIBLE_INVENTORY": str(settings.inventory_dir),
    }


def ansible_env(settings: LabSettings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ansible_variables(settings))
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["PATH"] = f"{ANSIBLE_BIN}:{env.get('PATH', '')}"
    return env


def run_playbook(
    settings: LabSettings, run_name: str, extra_args: list[str] | None = None
) -> ConvergeResult:
    log = settings.state_dir / "logs" / f"{run_name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        str(PLAYBOOKS / "site.yml"),
        *(extra_args or []),
    ]
    lines: list[str] = []
    with log.open("w", encoding="utf-8") as sink:
        process = subprocess.Popen(  # noqa: S603
            command,
            env=ansible_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=PLAYBOOKS,
        )
        assert process.stdout is not None
        for line in process.stdout:
            sink.write(line)
            lines.append(line)
            if os.environ.get("LAB_QUIET") != "1":
                sys.stdout.write(line)
                sys.stdout.flush()
        returncode = process.wait()
    return ConvergeResult(returncode, parse_recap("".join(lines)), log)
