"""The benchmark's figures: throughput at the SLO, medians with spread, ratios, interleaving."""

from __future__ import annotations

from bench.figures import Level, at_slo, interleaved_order, ratio, summarise


def level(users: int, rps: float, p95: float, *, errors: float = 0.0, gen: float = 50) -> Level:
    return Level(users, rps, p95, p95 * 1.5, errors, gen, 100.0)


def test_at_slo_is_the_fastest_level_that_kept_the_slo():
    levels = [level(2, 300, 20), level(8, 900, 120), level(32, 1100, 700)]
    assert at_slo(levels, p95_ms=500, p99_ms=1000, error_ratio=0.001) == levels[1]
    erroring = [level(2, 300, 20), level(8, 900, 120, errors=0.01)]
    assert at_slo(erroring, 500, 1000, 0.001) == erroring[0]
    assert at_slo([level(2, 300, 900)], 500, 1000, 0.001) is None


def test_summary_takes_medians_and_spread_of_the_repetitions():
    figure = summarise("product", [level(8, 1000, 50), level(8, 1200, 60, gen=70), None,
                                   level(32, 900, 80, gen=30)])  # fmt: skip
    assert figure.runs == 3
    assert (figure.median_rps, figure.min_rps, figure.max_rps) == (1000, 900, 1200)
    assert round(figure.spread, 2) == 0.3
    assert figure.median_generator_cpu_pct == 50
    assert figure.median_users == 8
    assert summarise("cart", [None, None]).median_rps == 0


def test_ratios_and_interleaving():
    bare = summarise("bare", [level(8, 2000, 10)])
    product = summarise("product", [level(8, 500, 10)])
    assert ratio(product, bare) == 0.25
    assert ratio(product, summarise("none", [None])) is None
    names = ["noop", "bare", "mix"]
    orders = [interleaved_order(names, r) for r in range(3)]
    assert orders == [["noop", "bare", "mix"], ["bare", "mix", "noop"], ["mix", "noop", "bare"]]
    assert {o[0] for o in orders} == set(names)  # each scenario leads once
