"""The t and Beta quantiles of ``core.metrics`` and ``policy.allocation`` are scipy.stats' own.

Both modules call ``scipy.special`` (``stdtrit``, ``stdtr``, ``betaincinv``) instead of
``scipy.stats`` (0.3 s of import instead of 0.7 s every tune run, issue 16). The decision
records carry the interval bounds as floats, so "the same" means bit for bit: every case here
compares with ``==``, over the ranges the rules use (confidence levels, trade counts up to a
million, win counts from 0 to n) and at the edges (n = 2, all wins, no wins).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from autolearn.core.metrics import expectancy_interval, summarize, win_rate_interval
from autolearn.policy.allocation import posterior_positive

_CONFIDENCE = st.floats(min_value=0.5, max_value=0.999, allow_nan=False)
_PNL = st.lists(
    st.floats(min_value=-500, max_value=500, allow_nan=False, allow_infinity=False),
    min_size=2,
    max_size=60,
)


def _scipy_expectancy_interval(values: list[float], confidence: float) -> tuple[float, float]:
    s = summarize(values)
    if s.std == 0:
        return (s.expectancy, s.expectancy)
    half = float(stats.t.ppf(0.5 + confidence / 2, s.n - 1)) * s.std / math.sqrt(s.n)
    return (s.expectancy - half, s.expectancy + half)


@settings(max_examples=300, deadline=None)
@given(values=_PNL, confidence=_CONFIDENCE)
def test_expectancy_interval_is_scipy_stats_t_ppf_bit_for_bit(
    values: list[float], confidence: float
) -> None:
    """The Student-t interval equals the one built on ``scipy.stats.t.ppf``, exactly."""
    assert expectancy_interval(values, confidence) == _scipy_expectancy_interval(values, confidence)


@settings(max_examples=300, deadline=None)
@given(df=st.integers(min_value=1, max_value=1_000_000), confidence=_CONFIDENCE)
def test_t_quantile_matches_at_every_sample_size(df: int, confidence: float) -> None:
    """The quantile the interval uses, for any trade count up to a million."""
    from scipy.special import stdtrit

    q = 0.5 + confidence / 2
    assert float(stdtrit(df, q)) == float(stats.t.ppf(q, df))


@settings(max_examples=400, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=200_000),
    share=st.floats(min_value=0.0, max_value=1.0),
    confidence=_CONFIDENCE,
    prior=st.sampled_from([(1.0, 1.0), (0.5, 0.5), (2.0, 3.0)]),
)
def test_win_rate_interval_is_scipy_stats_beta_ppf_bit_for_bit(
    n: int, share: float, confidence: float, prior: tuple[float, float]
) -> None:
    """The Beta-posterior interval equals ``scipy.stats.beta.ppf``'s, exactly (0 to n wins)."""
    wins = round(share * n)
    a, b = prior[0] + wins, prior[1] + (n - wins)
    tail = (1 - confidence) / 2
    expected = (float(stats.beta.ppf(tail, a, b)), float(stats.beta.ppf(1 - tail, a, b)))
    assert win_rate_interval(wins, n, confidence, prior) == expected


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=100_000),
    mean=st.floats(min_value=-50, max_value=50, allow_nan=False),
    sd=st.floats(min_value=1e-3, max_value=100, allow_nan=False),
)
def test_posterior_positive_is_scipy_stats_t_cdf_bit_for_bit(
    n: int, mean: float, sd: float
) -> None:
    """The allocation's P(expectancy > 0) equals ``scipy.stats.t.cdf``'s, exactly."""
    expected = float(stats.t.cdf(mean * math.sqrt(n) / sd, n - 1))
    assert posterior_positive(n, mean, sd) == expected


@pytest.mark.parametrize(
    ("wins", "n"), [(0, 1), (1, 1), (0, 500), (500, 500), (7, 10), (2_152, 2_804)]
)
@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99])
def test_win_rate_interval_on_a_grid(wins: int, n: int, confidence: float) -> None:
    """The grid the exit rules meet in practice, including no wins and all wins."""
    a, b = 1.0 + wins, 1.0 + (n - wins)
    tail = (1 - confidence) / 2
    expected = (float(stats.beta.ppf(tail, a, b)), float(stats.beta.ppf(1 - tail, a, b)))
    assert win_rate_interval(wins, n, confidence) == expected


def test_quantiles_do_not_import_scipy_stats() -> None:
    """The point of the change: computing every interval leaves ``scipy.stats`` unimported."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from autolearn.core.metrics import expectancy_interval, win_rate_interval\n"
        "from autolearn.policy.allocation import posterior_positive\n"
        "expectancy_interval([1.0, -2.0, 0.5], 0.9); win_rate_interval(3, 10)\n"
        "posterior_positive(10, 0.2, 1.0)\n"
        "assert 'scipy.stats' not in sys.modules, 'scipy.stats imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
