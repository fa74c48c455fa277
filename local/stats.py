"""The one percentile the benchmarks and the evaluation report (nearest rank on the sorted samples)."""

from __future__ import annotations

from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float:
    """The sample at rank ``q``% of the sorted values (NaN for none): p50 is the median sample, p99 of
    1000 samples the 990th, with no interpolation between samples."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]
