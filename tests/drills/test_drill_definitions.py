"""The drills as written: every experiment is one Chaos Toolkit accepts, names a fault of
the catalogue and alerts of monitoring/, and points at runbook blocks that still hold what
it means to run; the report's verdict fails a drill for what it should. (The drills
themselves run on a lab: tests/lab/test_lab_drills.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from drills import activities, faults, report, run, runbook
from loadtests import ledger

EXPERIMENTS = sorted(run.EXPERIMENTS_DIR.glob("*.yaml"))


def _experiment(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _calls(experiment: dict[str, Any], func: str) -> list[dict[str, Any]]:
    activities_ = experiment["method"] + experiment.get("rollbacks", [])
    return [
        a["provider"].get("arguments", {}) for a in activities_ if a["provider"]["func"] == func
    ]


def _extension(experiment: dict[str, Any]) -> dict[str, Any]:
    (drill,) = [e for e in experiment["extensions"] if e["name"] == "drill"]
    return drill


def test_the_make_test_drills_exist() -> None:
    assert {"cache-down", "zone-down", "payment-outage"} <= set(run.names())


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_chaos_toolkit_accepts_the_experiment(path: Path, tmp_path: Path) -> None:
    chaos = Path(sys.executable).with_name("chaos")
    result = subprocess.run(
        [str(chaos), "--no-version-check", "--no-log-file", "validate", str(path)],
        env={**os.environ, "DRILL_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_the_experiment_brings_and_always_clears_a_catalogued_fault(path: Path) -> None:
    experiment = _experiment(path)
    brought = [a["fault"] for a in _calls(experiment, "bring_fault")]
    rollbacks = [a["provider"] for a in experiment["rollbacks"]]
    assert brought == [_extension(experiment)["fault"]] == [path.stem]
    assert all(name in faults.FAULTS for name in brought)
    assert {"func": "clear_fault", "fault": brought[0]} in [
        {"func": p["func"], **p.get("arguments", {})} for p in rollbacks
    ]
    assert "stop_load" in [p["func"] for p in rollbacks]


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_the_experiment_waits_for_alerts_that_exist_with_their_routes(path: Path) -> None:
    experiment = _experiment(path)
    names = {rule["alert"] for rule in activities.alert_rules()}
    waited = [a["alert"] for a in _calls(experiment, "wait_for_alert")]
    assert set(waited) <= names
    if not waited:  # a quiet drill: customers feel nothing, so nobody may be told
        assert _extension(experiment)["alerts"] == []
        assert {} in _calls(experiment, "assert_not_notified"), "a quiet drill checks it"
    assert set(_extension(experiment)["alerts"]) <= names
    assert set(_extension(experiment)["deserved_pages"]) <= set(waited)
    for call in _calls(experiment, "wait_for_notification"):
        severity = activities.alert_rule(call["alert"])["labels"]["severity"]
        receiver = {"page": "pager", "ticket": "tickets"}[severity]
        assert call["receiver"] == receiver, call


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_the_mitigation_blocks_it_runs_still_say_what_it_expects(path: Path) -> None:
    experiment = _experiment(path)
    calls = _calls(experiment, "run_mitigation")
    if _calls(experiment, "wait_for_alert"):
        assert calls, "a drill that pages or tickets follows the runbook it links"
    for call in calls:
        body = runbook.mitigation_block(call["runbook_page"], call["block"], call["expect"])
        assert call["expect"] in body


def test_a_moved_runbook_block_fails_the_drill_instead_of_running_another() -> None:
    with pytest.raises(runbook.RunbookError, match="no longer holds"):
        runbook.mitigation_block("RedisDown", 1, "make faults-reset")
    with pytest.raises(runbook.RunbookError, match="not 9"):
        runbook.mitigation_block("RedisDown", 9, "redis")


def test_an_unknown_fault_names_the_known_ones() -> None:
    with pytest.raises(faults.FaultError, match="cache-down"):
        faults.get("cache-downn")


def _journal(statuses: list[str], status: str = "completed", deviated: bool = False) -> dict:
    return {
        "status": status,
        "deviated": deviated,
        "run": [
            {"activity": {"name": f"step-{i}"}, "status": s, "exception": ["Boom: it broke\n"]}
            for i, s in enumerate(statuses)
        ],
        "rollbacks": [],
    }


@pytest.mark.parametrize(
    ("journal", "problem"),
    [
        (_journal(["succeeded", "failed"]), "step-1: Boom: it broke"),
        (_journal(["succeeded"], status="failed"), "experiment failed"),
        (_journal(["succeeded"], deviated=True), "deviated"),
    ],
)
def test_the_verdict_fails_a_drill_whose_journal_shows_a_failure(journal, problem) -> None:
    assert any(problem in p for p in report.verdict(journal))


def test_the_verdict_passes_a_clean_journal() -> None:
    assert report.verdict(_journal(["succeeded", "succeeded"])) == []


@pytest.mark.parametrize(
    ("entry", "unavailable"),
    [
        ({"status": 200}, False),
        ({"status": 503, "error": "HTTP 503"}, True),
        ({"status": 0, "error": "ConnectionRefusedError"}, True),
        ({"status": 403, "error": "checkout refused: forbidden"}, False),  # a fraud block
    ],
)
def test_only_what_the_shop_did_not_serve_counts_as_failed(entry, unavailable) -> None:
    assert ledger.unavailable(entry) is unavailable
