"""SLO gates come from monitoring/slos.yml, can be overridden, and fail the runs they should."""

from __future__ import annotations

import pytest
import yaml

from loadtests.config import ConfigError
from loadtests.gates import (
    SLOS_FILE,
    GateSpec,
    Measured,
    Thresholds,
    all_passed,
    capacity_gate,
    evaluate_slo,
    load_gate_spec,
    parse_overrides,
    throughput_gate,
)
from loadtests.routes import JOURNEYS

GOOD = Measured(requests=1000, failures=0, p95_ms=120, p99_ms=300)


def _journeys(**special: Measured) -> dict[str, Measured]:
    return {j: special.get(j, GOOD) for j in JOURNEYS}


def test_thresholds_are_the_slo_files_load_gates():
    gates = yaml.safe_load(SLOS_FILE.read_text())["load_gates"]
    spec = load_gate_spec()
    assert spec.overall == Thresholds(gates["error_ratio"], gates["p95_ms"], gates["p99_ms"])
    checkout = gates["per_journey"]["checkout"]
    assert spec.for_journey("checkout").p95_ms == checkout["p95_ms"]
    assert spec.for_journey("checkout").error_ratio == gates["error_ratio"]  # inherited
    assert spec.for_journey("browse") == spec.overall


def test_a_good_run_passes_every_gate():
    spec = load_gate_spec()
    results = evaluate_slo(spec, GOOD, _journeys())
    assert all_passed(results)
    names = {r.name for r in results}
    assert {"overall.p95_ms", "overall.p99_ms", "overall.error_ratio", "checkout.p99_ms"} <= names


def test_p95_override_of_one_ms_fails_the_overall_gate():
    spec = load_gate_spec(parse_overrides([], {"P95_MS": "1"}))
    results = evaluate_slo(spec, GOOD, _journeys())
    failed = {r.name for r in results if not r.passed}
    assert "overall.p95_ms" in failed
    assert "checkout.p95_ms" not in failed  # checkout keeps its own threshold
    line = next(r for r in results if r.name == "overall.p95_ms").line()
    assert line.startswith("FAIL overall.p95_ms: 120")


def test_a_slow_journey_fails_only_its_gate():
    spec = load_gate_spec()
    slow_checkout = Measured(requests=50, failures=0, p95_ms=900, p99_ms=2500)
    results = evaluate_slo(spec, GOOD, _journeys(checkout=slow_checkout))
    assert [r.name for r in results if not r.passed] == ["checkout.p99_ms"]


def test_errors_fail_the_error_ratio_gate():
    spec = load_gate_spec()
    flaky = Measured(requests=1000, failures=2, p95_ms=100, p99_ms=200)  # 0.2 % > 0.1 %
    results = evaluate_slo(spec, flaky, _journeys())
    assert [r.name for r in results if not r.passed] == ["overall.error_ratio"]


def test_a_run_without_requests_fails():
    spec = load_gate_spec()
    nothing = Measured(requests=0, failures=0, p95_ms=0, p99_ms=0)
    results = evaluate_slo(spec, nothing, {j: nothing for j in JOURNEYS})
    assert [r.name for r in results if not r.passed] == ["overall.requests"]


def test_journeys_that_did_not_run_are_not_gated():
    spec = load_gate_spec()
    idle = Measured(requests=0, failures=0, p95_ms=0, p99_ms=0)
    results = evaluate_slo(spec, GOOD, _journeys(checkout=idle))
    assert not any(r.name.startswith("checkout.") for r in results)


def test_a_gate_for_an_unknown_journey_is_an_error():
    spec = GateSpec(overall=Thresholds(0.001, 500, 1000), per_journey={"chekout": Thresholds()})
    with pytest.raises(ConfigError, match="chekout"):
        evaluate_slo(spec, GOOD, _journeys())


def test_overrides_from_arguments_win_over_the_environment():
    overrides = parse_overrides(
        ["p95_ms=300", "checkout.p99_ms=1500"], {"P95_MS": "1", "ERROR_RATIO": "0.05"}
    )
    assert overrides == {
        "overall": {"p95_ms": 300, "error_ratio": 0.05},
        "checkout": {"p99_ms": 1500},
    }
    spec = load_gate_spec(overrides)
    assert spec.overall.p95_ms == 300
    assert spec.for_journey("checkout").p99_ms == 1500


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["p95=3"], {}, "not \\[<journey>.\\]<metric>=<value>"),
        (["p95_ms"], {}, "not \\[<journey>.\\]<metric>=<value>"),
        (["p95_ms=fast"], {}, "p95_ms must be a number"),
        (["error_ratio=2"], {}, "<= 1"),
        ([], {"P99_MS": "-5"}, "environment P99_MS"),
    ],
)
def test_bad_overrides_are_refused_with_a_clear_message(args, env, message):
    with pytest.raises(ConfigError, match=message):
        parse_overrides(args, env)


def test_throughput_and_capacity_gates():
    assert throughput_gate("hold", 38.0, 40.0, 0.8).passed
    assert not throughput_gate("hold", 20.0, 40.0, 0.8).passed
    assert capacity_gate(55.0, 40.0).passed
    assert not capacity_gate(30.0, 40.0).passed
    assert not capacity_gate(None, 40.0).passed
