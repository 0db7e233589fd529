"""Nearest-rank percentiles used by the demo, the conformance budgets and the benchmarks."""

from __future__ import annotations

import math

from tradewire.latency import percentile, percentiles


def test_nearest_rank() -> None:
    ordered = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(ordered, 50) == 50
    assert percentile(ordered, 99) == 99
    assert percentile(ordered, 99.9) == 100
    assert percentile(ordered, 0) == 1
    assert percentile([7.0], 99.9) == 7


def test_unsorted_samples_and_empty_input() -> None:
    assert percentiles([3.0, 1.0, 2.0], (50, 100)) == {"p50": 2.0, "p100": 3.0}
    assert percentiles([]) == {}
    assert math.isnan(percentile([], 50))
