"""``summarize`` and the interval helpers are memoized; the memo must never change an answer.

The memo is keyed by the exact bits of the sample (never by the list object, which a caller may
change), and inputs that are not lists of floats bypass it.
"""

from __future__ import annotations

import math
import random

import pytest

from autolearn.core import metrics
from autolearn.core.metrics import expectancy_interval, interval_of, summarize, win_rate_interval


def _fields(stats: metrics.Stats) -> list[str]:
    return [repr(getattr(stats, name)) for name in stats.__slots__]  # repr: -0.0 and nan exact


def test_memoized_summaries_equal_fresh_ones() -> None:
    rng = random.Random(7)
    for _ in range(200):
        sample = [rng.choice([rng.gauss(0, 5), 0.0, -0.0, 1e300]) for _ in range(rng.randrange(40))]
        assert _fields(summarize(sample)) == _fields(metrics._summarize(list(sample)))
        assert _fields(summarize(sample)) == _fields(metrics._summarize(list(sample)))  # hit


def test_the_memo_follows_the_content_not_the_list() -> None:
    """A list changed after it was summarized is summarized again."""
    sample = [1.0] * 10
    assert summarize(sample).losses == 0
    sample[0] = -5.0
    assert summarize(sample).losses == 1 and summarize(sample).net == 4.0


def test_non_float_samples_bypass_the_memo() -> None:
    ints = list(range(-5, 20))
    assert summarize(ints) == metrics._summarize(ints)
    assert summarize(tuple(float(i) for i in ints)) == summarize([float(i) for i in ints])


def test_interval_of_a_summary_equals_the_interval_of_its_sample() -> None:
    rng = random.Random(3)
    for n in (0, 1, 2, 5, 50):
        sample = [rng.gauss(0.5, 3) for _ in range(n)]
        got = interval_of(summarize(sample), 0.9)
        want = expectancy_interval(sample, 0.9)
        assert repr(got) == repr(want)


def test_memoized_quantiles_match_scipys() -> None:
    """Through the memo, twice (a miss, then a hit): scipy's values to 1e-12 (the pure-Python
    quantiles themselves are tested in test_distributions.py)."""
    from scipy import stats

    for _ in range(2):
        lo, hi = expectancy_interval([1.0, 2.0, 4.0, -1.0], 0.9)
        s = summarize([1.0, 2.0, 4.0, -1.0])
        half = float(stats.t.ppf(0.95, 3)) * s.std / math.sqrt(4)
        assert (lo, hi) == pytest.approx((s.expectancy - half, s.expectancy + half), rel=1e-12)
        assert win_rate_interval(7, 10) == pytest.approx(
            (float(stats.beta.ppf(0.05, 8.0, 4.0)), float(stats.beta.ppf(0.95, 8.0, 4.0))),
            rel=1e-12,
        )
