"""The one percentile of the benchmarks and the evaluation (nearest rank, no interpolation)."""

import math

from local.stats import percentile


def test_nearest_rank_on_the_sorted_samples() -> None:
    samples = [float(n) for n in range(1, 101)]  # 1..100, shuffled order does not matter
    assert percentile(reversed(samples), 50) == 51.0  # rank round(0.5 * 99) = 50 (0-based)
    assert percentile(samples, 99) == 99.0
    assert percentile(samples, 100) == 100.0 and percentile(samples, 0) == 1.0


def test_one_sample_is_every_percentile_and_none_is_nan() -> None:
    assert percentile([7.0], 1) == percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
