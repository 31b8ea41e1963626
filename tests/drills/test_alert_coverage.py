"""Every alert of monitoring/ is fired by a drill, or listed with the reason it cannot be
provoked in the lab (drills/unprovoked.yml), never both; the report's table says which."""

from __future__ import annotations

from drills import activities, coverage


def _alerts() -> set[str]:
    return {rule["alert"] for rule in activities.alert_rules()}


def test_the_drills_name_only_alerts_that_exist() -> None:
    assert set(coverage.drilled_alerts()) - _alerts() == set()


def test_the_unprovoked_alerts_exist_and_each_says_why() -> None:
    reasons = coverage.unprovoked()
    assert set(reasons) - _alerts() == set()
    assert [alert for alert, reason in reasons.items() if len(reason) < 40] == []


def test_no_alert_is_both_drilled_and_called_unprovokable() -> None:
    assert set(coverage.drilled_alerts()) & set(coverage.unprovoked()) == set()


def test_the_report_table_has_every_alert_once_with_its_drill_or_reason() -> None:
    rows = {alert: by for alert, _, by in coverage.rows()}
    assert len(rows) == len(coverage.rows()) == len(_alerts())
    assert rows["ZoneDown"].split(", ") == ["app-crashloop", "zone-down"]
    assert rows["InstanceDown"].split(", ") == ["app-crashloop", "zone-down"]
    assert rows["Watchdog"].startswith("cannot be provoked in the lab: Always firing")
