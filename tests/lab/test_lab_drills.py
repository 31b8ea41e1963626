"""The fault drills that `make test` runs on the session's lab: zone-down, cache-down and
payment-outage (drills/experiments/), each under a steady load through the edge, with its
alert, its page or ticket, its runbook's mitigation and the books checked afterwards.
`make lab-drills` runs every drill on the main lab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.drill]
REPO = Path(__file__).resolve().parents[2]
MAKE_TEST_DRILLS = ["cache-down", "zone-down", "payment-outage"]
DRILLS_TIMEOUT_S = 60 * 60


def test_the_make_test_drills_pass_and_write_their_report(lab) -> None:
    report_dir = REPO / "reports" / "drills" / lab.settings.name
    env = {
        **os.environ,
        "LAB_NAME": lab.settings.name,
        "LAB_SUBNET_SHIFT": str(lab.settings.subnet_shift),
    }
    run = subprocess.run(
        [sys.executable, "-m", "drills", "run", *MAKE_TEST_DRILLS, "--report-dir", str(report_dir)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=DRILLS_TIMEOUT_S, check=False,
    )  # fmt: skip
    summaries = json.loads((report_dir / "drills.json").read_text(encoding="utf-8"))
    failed = {s["drill"]: s["problems"] for s in summaries if not s["passed"]}
    assert run.returncode == 0 and not failed, (failed, run.stdout[-3000:], run.stderr[-3000:])
    assert [s["drill"] for s in summaries] == MAKE_TEST_DRILLS
    for summary in summaries:
        assert summary["seconds_to_fire"] <= summary["fire_budget_s"], summary
        assert summary["seconds_to_notify"] <= summary["notify_budget_s"], summary
        assert summary["books"]["checkouts_confirmed"] > 0, summary["books"]
        assert summary["books"]["discrepancies"] == [], summary["books"]
        assert (report_dir / summary["drill"] / "timeline.png").stat().st_size > 0
    assert "| zone-down | pass |" in (report_dir / "drills.md").read_text(encoding="utf-8")
