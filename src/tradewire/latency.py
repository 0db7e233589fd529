"""Latency statistics shared by the demo, the conformance runner and the benchmarks."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted samples; NaN when empty."""
    if not ordered:
        return math.nan
    return ordered[max(1, min(len(ordered), math.ceil(q / 100 * len(ordered)))) - 1]


def percentiles(
    samples: Iterable[float], points: tuple[float, ...] = (50, 99, 99.9)
) -> dict[str, float]:
    """{"p50": ..., "p99": ..., "p99.9": ...} of unsorted samples; empty when there are none."""
    ordered = sorted(samples)
    return {f"p{p:g}": percentile(ordered, p) for p in points} if ordered else {}
