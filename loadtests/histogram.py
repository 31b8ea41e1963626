"""Response-time histograms as Locust keeps them: {rounded milliseconds: count}.

Windows (a step, a plot interval) and journeys (several routes together) are
built by subtracting and adding these histograms; percentiles are read the way
Locust reads them, so our figures match its HTML report. This module does not
import locust on purpose: importing it monkey-patches the whole process with
gevent, which the CLI and the test runner must not get.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

Histogram = Mapping[int, int]


def percentile_ms(histogram: Histogram, fraction: float) -> int:
    """The response time that `fraction` (0..1) of the requests finished within; 0 if empty."""
    total = sum(histogram.values())
    if total == 0:
        return 0
    allowed_above = int(total * fraction)
    counted = 0
    for value in sorted(histogram, reverse=True):
        counted += histogram[value]
        if total - counted <= allowed_above:
            return value
    return 0  # unreachable: the loop ends with total - counted == 0


def subtract(later: Histogram, earlier: Histogram) -> dict[int, int]:
    """The requests recorded between two snapshots of the same cumulative histogram."""
    return {t: n for t in later if (n := later[t] - earlier.get(t, 0)) > 0}


def merge(histograms: Iterable[Histogram]) -> dict[int, int]:
    total: Counter[int] = Counter()
    for histogram in histograms:
        total.update(histogram)
    return dict(total)
