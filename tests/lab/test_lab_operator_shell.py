"""A runbook followed as written: the Diagnosis commands of InstanceDown, copied from the
page at run time, run in the operator's shell (`python -m lab shell -c`) against the lab
and answer what the page says they answer: the down targets (none), app-a1's uptime and
its shop unit running, the port answering from mon, the firewall rule for it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitoring import runbook_blocks

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]


def _blocks(page: str, kind: str, language: str) -> list[str]:
    """The page's `language` blocks marked `kind` (```bash diagnosis), in page order."""
    return [b.body for b in runbook_blocks.blocks_of(REPO / "runbooks" / page, language, kind)]


def _in_operator_shell(lab, command: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LAB_NAME": lab.settings.name,
        "LAB_SUBNET_SHIFT": str(lab.settings.subnet_shift),
    }
    return subprocess.run(
        [sys.executable, "-m", "lab", "shell", "-c", f"set -eo pipefail\n{command}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_instance_down_diagnosis_runs_as_written(lab) -> None:
    blocks = _blocks("InstanceDown.md", "diagnosis", "bash")
    assert len(blocks) == 3, blocks
    targets, host_and_unit, port_and_firewall = (_in_operator_shell(lab, b) for b in blocks)
    for result in (targets, host_and_unit, port_and_firewall):
        assert result.returncode == 0, result.stdout + result.stderr
    assert targets.stdout.strip() == "", f"down targets in a healthy lab: {targets.stdout}"
    assert "load average" in host_and_unit.stdout
    assert "Active: active (running)" in host_and_unit.stdout
    assert port_and_firewall.stdout.splitlines()[0] == "200"
    assert "8000" in port_and_firewall.stdout.splitlines()[1]


RUNBOOK_TOOLS = ("curl", "jq", "socat", "nc", "openssl", "iostat")


def test_every_host_answers_by_name_with_the_tools_the_runbooks_use(lab) -> None:
    names = " ".join(sorted(lab.hosts))
    tools = " ".join(RUNBOOK_TOOLS)
    result = _in_operator_shell(
        lab, f'for host in {names}; do echo "$host $(ssh $host command -v {tools} | wc -l)"; done'
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = dict(line.split() for line in result.stdout.splitlines())
    assert found == dict.fromkeys(sorted(lab.hosts), str(len(RUNBOOK_TOOLS))), result.stdout
