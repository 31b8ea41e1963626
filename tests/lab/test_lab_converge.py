"""site.yml converges every lab host, and converging again changes nothing."""

import pytest

pytestmark = pytest.mark.lab


def test_every_host_converged(lab):
    recap = lab.second_converge.recap
    assert set(recap) == set(lab.hosts)
    assert all(r.failed == 0 and r.unreachable == 0 for r in recap.values()), recap


def test_second_converge_changes_nothing(lab):
    changed = {host: r.changed for host, r in lab.second_converge.recap.items() if r.changed}
    assert changed == {}, f"not idempotent; see {lab.second_converge.log}"
