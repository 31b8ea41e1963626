"""Percentiles over Locust-style histograms, windows and merges."""

from __future__ import annotations

from loadtests.histogram import merge, percentile_ms, subtract


def test_percentiles_read_like_locust():
    # 100 requests: 90 at 10 ms, 5 at 100 ms, 4 at 500 ms, 1 at 2000 ms. Locust's
    # calculate_response_time_percentile gives 10, 100, 500, 2000, 2000 for these (it
    # leans to the slower side at a boundary); our figures must match its report.
    hist = {10: 90, 100: 5, 500: 4, 2000: 1}
    assert percentile_ms(hist, 0.50) == 10
    assert percentile_ms(hist, 0.90) == 100
    assert percentile_ms(hist, 0.95) == 500
    assert percentile_ms(hist, 0.99) == 2000
    assert percentile_ms(hist, 1.0) == 2000
    assert percentile_ms({10: 89, 100: 6, 500: 4, 2000: 1}, 0.90) == 100
    assert percentile_ms({10: 91, 100: 4, 500: 4, 2000: 1}, 0.90) == 10
    assert percentile_ms({}, 0.95) == 0


def test_window_is_the_difference_of_two_snapshots():
    earlier = {10: 5, 20: 1}
    later = {10: 8, 20: 1, 900: 2}
    assert subtract(later, earlier) == {10: 3, 900: 2}


def test_merge_adds_counts():
    assert merge([{10: 1, 20: 2}, {20: 3, 30: 1}]) == {10: 1, 20: 5, 30: 1}
