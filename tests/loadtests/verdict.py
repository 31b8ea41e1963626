"""What a test may require of a load-test run on this machine.

Latency gates (`*_ms`) hold or fail with the machine's load: a 30 s smoke run of about a
hundred requests fails its p95 when one request in twenty waits behind another suite.
Latency is measured by benchmarks and the reports they write, not asserted by tests
(tests/loadtests/test_runs.py::test_an_impossible_gate_fails_the_run_and_is_named
checks that a failed latency gate fails the run). Everything else a run gates on
(errors, exceptions, requests sent, throughput held) a test requires.
"""

from __future__ import annotations

import re

LATENCY_SUFFIX = "_ms"
_RESULT_LINE = re.compile(r"^RESULT: (PASS|FAIL)(?: - failed gate\(s\): (.+))?$", re.M)


def is_latency_gate(name: str) -> bool:
    return name.endswith(LATENCY_SUFFIX)


def behaviour_failures(failed_gates: list[str]) -> list[str]:
    """The failed gates that are not latency gates."""
    return [name for name in failed_gates if not is_latency_gate(name)]


def failed_gates_in(output: str) -> list[str]:
    """The failed gates a run printed on its RESULT line; raises when there is none."""
    match = _RESULT_LINE.search(output)
    if match is None:
        raise AssertionError(f"no RESULT line in the run's output:\n{output[-3000:]}")
    return match.group(2).split(", ") if match.group(2) else []


def assert_ran_and_behaved(code: int, output: str) -> None:
    """The run finished with a verdict (exit 0 or 1) and only latency gates may have failed."""
    assert code in (0, 1), output[-3000:]
    failed = failed_gates_in(output)
    assert behaviour_failures(failed) == [], output[-3000:]
    assert (code == 0) == (failed == []), output[-3000:]
