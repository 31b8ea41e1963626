"""The alert and recording rules: valid, unit-tested with promtool, complete, and the
generated SLO rules up to date with monitoring/slos.yml."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from monitoring_services import run
from monitoring_support import (
    RUNBOOKS_DIR,
    alert_names,
    alerting_rules,
    load_yaml,
    rule_files,
    rule_test_files,
)

from monitoring import config as monitoring_config
from monitoring import slo_rules

CONFIG = monitoring_config.default()
# Always firing by design (the heartbeat of the alerting pipeline)
HEARTBEAT_ALERTS = {"Watchdog"}
# The runbook base the promtool unit tests give as the external label runbook_base_url.
DEFAULT_RUNBOOK_BASE_URL = CONFIG.runbook_base_url

# Every kind of alert issue 4 asks for, and the alerts that answer it.
REQUIRED_ALERTS = {
    "instance down": {"InstanceDown"},
    "a whole zone down": {"ZoneDown"},
    "load balancer backends down": {"LoadBalancerBackendDown", "LoadBalancerNoHealthyBackend"},
    "error spike per route": {"ShopRouteErrorSpike"},
    "latency": {"ShopRouteLatencyHigh", "CheckoutLatencyFastBurn"},
    "database down": {"PostgresDown"},
    "connections near max": {"PostgresConnectionsNearMax", "ShopDbPoolSaturated"},
    "replication lag or no replica": {"PostgresReplicationLagHigh", "PostgresReplicaMissing"},
    "long transactions": {"PostgresLongTransaction"},
    "disk filling (predict_linear)": {"HostDiskWillFillIn4Hours", "HostDiskSpaceLow"},
    "memory": {"HostMemoryLow"},
    "CPU saturation": {"HostCpuSaturated"},
    "certificate expiring": {"TLSCertificateExpiringSoon", "TLSCertificateExpiryImminent"},
    "payment provider error rate": {"PaymentProviderErrorRateHigh"},
    "payment circuit open": {"PaymentCircuitOpen"},
    "fraud blocks spiking": {"FraudBlocksSpiking"},
    "outbox backlog growing": {"OutboxBacklogGrowing"},
    "outbox oldest message age": {"OutboxOldestMessageTooOld"},
    "mail quota nearly used": {"MailQuotaNearlyUsed"},
    "stock-outs of best sellers": {"BestsellersOutOfStock"},
    "no orders in business hours": {"NoOrdersDuringBusinessHours"},
    "SLO burn (page and ticket)": {
        "StorefrontAvailabilityFastBurn",
        "StorefrontAvailabilitySlowBurn",
        "CheckoutLatencyFastBurn",
        "CheckoutLatencySlowBurn",
    },
}


def test_promtool_check_rules_accepts_every_rule_file() -> None:
    result = run(["promtool", "check", "rules", *map(str, rule_files())])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("test_file", rule_test_files(), ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file: Path) -> None:
    result = run(["promtool", "test", "rules", test_file.name], cwd=test_file.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_catch_a_wrong_expectation(tmp_path: Path) -> None:
    """The unit tests compare annotations exactly: a changed expectation must fail."""
    original = rule_test_files()[0]
    source = load_yaml(original)
    source["rule_files"] = [str(original.parent / name) for name in source["rule_files"]]
    case = next(c for t in source["tests"] for c in t.get("alert_rule_test", []) if c["exp_alerts"])
    case["exp_alerts"][0]["exp_annotations"]["summary"] += " (changed)"
    broken = tmp_path / "broken.test.yml"
    broken.write_text(yaml.safe_dump(source), encoding="utf-8")
    result = run(["promtool", "test", "rules", str(broken)])
    assert result.returncode != 0
    assert "(changed)" in result.stdout + result.stderr


def test_alert_names_are_unique() -> None:
    names = [rule["alert"] for rule in alerting_rules()]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda r: r["alert"])
def test_alert_carries_severity_team_and_annotations(rule: dict) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", name), "alert names are CamelCase"
    # the heartbeat pages nobody: its absence does (the dead man's switch)
    severities = {"none"} if name in HEARTBEAT_ALERTS else {"page", "ticket"}
    assert rule["labels"]["severity"] in severities
    assert rule["labels"]["team"] in {"sre", "shop", "payments"}
    annotations = rule["annotations"]
    assert set(annotations) >= {"summary", "description", "runbook_url"}
    assert "$value" in annotations["description"], "the description shows the live value"
    assert annotations["runbook_url"] == CONFIG.runbook_url(name)
    assert (RUNBOOKS_DIR / f"{name}.md").is_file(), f"runbooks/{name}.md is missing"
    assert rule.get("for"), "every alert waits a `for` before it fires"


def test_every_kind_of_alert_the_issue_asks_for_exists() -> None:
    missing = {
        kind: sorted(names - alert_names())
        for kind, names in REQUIRED_ALERTS.items()
        if not names <= alert_names()
    }
    assert not missing


def _unit_test_cases() -> dict[str, dict[str, list[dict]]]:
    """alertname -> {"firing": [expected alerts...], "silent": [...]} over all test files."""
    cases: dict[str, dict[str, list[dict]]] = defaultdict(lambda: {"firing": [], "silent": []})
    for path in rule_test_files():
        for test in load_yaml(path)["tests"]:
            base_url = test.get("external_labels", {}).get("runbook_base_url")
            for case in test.get("alert_rule_test", []):
                kind = "firing" if case["exp_alerts"] else "silent"
                for expected in case["exp_alerts"] or [{}]:
                    cases[case["alertname"]][kind].append({**expected, "_base": base_url})
    return cases


@pytest.mark.parametrize("name", sorted(alert_names()))
def test_every_alert_has_a_firing_and_a_silent_unit_test(name: str) -> None:
    cases = _unit_test_cases()[name]
    assert cases["firing"], f"no promtool case where {name} fires"
    assert cases["silent"], f"no promtool case where {name} must stay silent"
    for expected in cases["firing"]:
        labels = expected.get("exp_labels", {})
        annotations = expected.get("exp_annotations", {})
        assert {"severity", "team"} <= set(labels), "the firing case checks the labels"
        assert {"summary", "description", "runbook_url"} <= set(annotations)
        url = annotations["runbook_url"]
        assert expected["_base"] == DEFAULT_RUNBOOK_BASE_URL
        assert url == f"{DEFAULT_RUNBOOK_BASE_URL}/{name}.md"
        # The URL resolves to the page in this repository.
        page = RUNBOOKS_DIR / url.removeprefix(DEFAULT_RUNBOOK_BASE_URL + "/")
        assert page.is_file()


def test_generated_slo_rules_are_up_to_date() -> None:
    assert slo_rules.main(["--check"]) == 0, "run `make rules`"


def test_slo_generator_refuses_a_latency_slo_without_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "slos.yml"
    bad.write_text(
        "window_days: 30\n"
        "slos:\n"
        "  checkout-latency:\n"
        "    description: x\n"
        "    objective: 0.99\n"
        "    sli: latency\n"
        "    selector: 'job=\"shop\"'\n"
        "load_gates: {}\n",
        encoding="utf-8",
    )
    assert slo_rules.main(["--slos", str(bad), "--output", str(tmp_path / "out.yml")]) == 2
    assert "threshold_seconds" in capsys.readouterr().err
    assert not (tmp_path / "out.yml").exists()


def test_slo_generator_follows_the_slo_file(tmp_path: Path) -> None:
    """A different objective changes the thresholds of the generated alerts."""
    slos = load_yaml(slo_rules.SLOS_FILE)
    slos["slos"]["storefront-availability"]["objective"] = 0.995
    changed = tmp_path / "slos.yml"
    changed.write_text(yaml.safe_dump(slos), encoding="utf-8")
    output = tmp_path / "slo.rules.yml"
    assert slo_rules.main(["--slos", str(changed), "--output", str(output)]) == 0
    text = output.read_text(encoding="utf-8")
    assert 'slo:sli_error:ratio_rate1h{slo="storefront-availability"} / 0.005 > 14.4' in text
    result = run(["promtool", "check", "rules", str(output)])
    assert result.returncode == 0, result.stdout + result.stderr
