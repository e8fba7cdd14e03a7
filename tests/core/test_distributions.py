"""``core.distributions``: the pure-Python t and Beta functions, held to scipy.

The rules' intervals (``core.metrics``) and the allocation's P(expectancy > 0)
(``policy.allocation``) used ``scipy.special`` until importing it was found to cost more than
the tune cycle (issue 16). The replacement is accurate, not bit-identical: relative error
<= 2e-12 for parameters up to 10,000 (every trade count a real bot's scope reaches in a
lookback; measured worst 1.4e-12, at a = 1/2, b ~ 9,300) and <= 1e-10 up to a million, where
rounding ``x`` near 1 costs ~max(a, b) * 1e-16 in the continued fraction. The binomial
quantile is exact at ties (a level equal to a CDF value), where scipy's rounding goes either
way. These tests compare over the ranges the rules use, at the edges
(1 and 2 degrees of freedom, no wins, all wins) and with absurd but finite inputs.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

from autolearn.core.distributions import (
    beta_ppf,
    binom_cdf,
    binom_ppf,
    regularized_beta,
    t_cdf,
    t_ppf,
)
from autolearn.core.metrics import expectancy_interval, summarize, win_rate_interval
from autolearn.policy.allocation import posterior_positive

_CONFIDENCE = st.floats(min_value=0.5, max_value=0.999, allow_nan=False)


def _tolerance(*params: float) -> float:
    return 2e-12 if max(params) <= 10_000 else 1e-10


def _close(ours: float, theirs: float, tol: float) -> bool:
    """Relative error within ``tol``; below 1e-300 (where scipy flushes to 0), absolute."""
    return abs(ours - theirs) <= max(tol * abs(theirs), 1e-300)


@settings(max_examples=400, deadline=None)
@given(df=st.integers(min_value=1, max_value=1_000_000), confidence=_CONFIDENCE)
def test_t_quantile_matches_scipy_at_every_sample_size(df: int, confidence: float) -> None:
    for p in (0.5 + confidence / 2, 0.5 - confidence / 2):
        assert _close(t_ppf(p, df), float(special.stdtrit(df, p)), _tolerance(df)), (p, df)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 29, 30, 1999, 2000, 2001, 54_000, 1_000_000])
@pytest.mark.parametrize("p", [1e-9, 0.0005, 0.025, 0.05, 0.3, 0.7, 0.95, 0.975, 0.9995])
def test_t_quantile_on_a_grid(df: int, p: float) -> None:
    """Both sides of the expansion's threshold (2,000), the closed forms (1, 2), deep tails."""
    assert _close(t_ppf(p, df), float(special.stdtrit(df, p)), 1e-11), (p, df)


def test_t_quantile_edges() -> None:
    assert t_ppf(0.5, 7) == 0.0
    assert t_ppf(1.0, 7) == math.inf and t_ppf(0.0, 7) == -math.inf
    with pytest.raises(ValueError, match="0 <= p <= 1"):
        t_ppf(1.5, 3)
    with pytest.raises(ValueError, match="df > 0"):
        t_ppf(0.9, 0)


@settings(max_examples=400, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=100_000),
    mean=st.floats(min_value=-50, max_value=50, allow_nan=False),
    sd=st.floats(min_value=1e-3, max_value=100, allow_nan=False),
)
def test_posterior_positive_matches_scipy_t_cdf(n: int, mean: float, sd: float) -> None:
    t = mean * math.sqrt(n) / sd
    df = n - 1
    if abs(t) < 1e-6:  # scipy returns exactly 0.5 here; the CDF is 1/2 + t * density(0) + O(t^3)
        density = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(
            df * math.pi
        )
        expected = 0.5 + t * density
    else:
        expected = float(special.stdtr(df, t))
    assert _close(posterior_positive(n, mean, sd), expected, _tolerance(n))


@pytest.mark.parametrize("t", [-1e300, -1e20, 1e20, 1e300, math.inf, -math.inf])
def test_t_cdf_with_absurd_but_finite_statistics(t: float) -> None:
    """A tiny sd makes t huge: the CDF is 0 or 1 (no overflow into NaN), as scipy's."""
    assert _close(t_cdf(t, 10), float(special.stdtr(10, t)), 1e-12)


@settings(max_examples=400, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=200_000),
    share=st.floats(min_value=0.0, max_value=1.0),
    confidence=_CONFIDENCE,
    prior=st.sampled_from([(1.0, 1.0), (0.5, 0.5), (2.0, 3.0)]),
)
def test_win_rate_interval_matches_scipy_beta_ppf(
    n: int, share: float, confidence: float, prior: tuple[float, float]
) -> None:
    """The Beta-posterior interval, 0 to n wins."""
    wins = round(share * n)
    a, b = prior[0] + wins, prior[1] + (n - wins)
    tail = (1 - confidence) / 2
    low, high = win_rate_interval(wins, n, confidence, prior)
    tol = _tolerance(a, b)
    assert _close(low, float(special.betaincinv(a, b, tail)), tol)
    assert _close(high, float(special.betaincinv(a, b, 1 - tail)), tol)


@pytest.mark.parametrize(
    ("wins", "n"), [(0, 1), (1, 1), (0, 500), (500, 500), (7, 10), (2_152, 2_804), (1, 54_000)]
)
@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99])
def test_win_rate_interval_on_a_grid(wins: int, n: int, confidence: float) -> None:
    """The grid the exit rules meet in practice, including no wins and all wins."""
    a, b = 1.0 + wins, 1.0 + (n - wins)
    tail = (1 - confidence) / 2
    low, high = win_rate_interval(wins, n, confidence)
    assert _close(low, float(special.betaincinv(a, b, tail)), _tolerance(a, b))
    assert _close(high, float(special.betaincinv(a, b, 1 - tail)), _tolerance(a, b))


@settings(max_examples=400, deadline=None)
@given(
    a=st.floats(min_value=0.5, max_value=5_000),
    b=st.floats(min_value=0.5, max_value=5_000),
    x=st.one_of(st.just(0.0), st.floats(min_value=1e-300, max_value=1.0)),
)
def test_regularized_beta_matches_scipy(a: float, b: float, x: float) -> None:
    """Where the value is representable (above 1e-280): relative error; below it, absolute.

    (Subnormal ``x`` is left out: there scipy itself is off, e.g. 15 % at ``I(5e-324; 0.5, 2)``.)
    """
    theirs = float(special.betainc(a, b, x))
    ours = regularized_beta(a, b, x)
    assert 0.0 <= ours <= 1.0
    if theirs > 1e-280:
        assert _close(ours, theirs, 1e-11), (a, b, x)
    else:
        assert ours < 1e-270


@settings(max_examples=200, deadline=None)
@given(p=st.floats(min_value=0.0, max_value=1.0), a=st.floats(0.5, 500), b=st.floats(0.5, 500))
def test_beta_quantile_inverts_the_cdf(p: float, a: float, b: float) -> None:
    """An invariant, not a comparison: the quantile lies in [0, 1] and its CDF is back at p."""
    x = beta_ppf(p, a, b)
    assert 0.0 <= x <= 1.0
    if 1e-12 < p < 1 - 1e-12:
        assert abs(regularized_beta(a, b, x) - p) <= 1e-12 * max(p, 1 - p)


def test_the_intervals_are_the_t_and_beta_quantiles() -> None:
    """The metrics compose them as the textbook does (mean +/- t * sd / sqrt(n))."""
    values = [1.0, -2.0, 0.5, 3.0, -1.5]
    s = summarize(values)
    half = t_ppf(0.5 + 0.9 / 2, s.n - 1) * s.std / math.sqrt(s.n)
    assert expectancy_interval(values, 0.9) == (s.expectancy - half, s.expectancy + half)
    tail = (1 - 0.9) / 2
    assert win_rate_interval(3, 10, 0.9) == (beta_ppf(tail, 4, 8), beta_ppf(1 - tail, 4, 8))


def test_intervals_do_not_import_scipy() -> None:
    """The point of the module: every interval and the allocation leave scipy unimported."""
    code = (
        "import sys\n"
        "from autolearn.core.metrics import expectancy_interval, win_rate_interval\n"
        "from autolearn.policy.allocation import posterior_positive\n"
        "expectancy_interval([1.0, -2.0, 0.5], 0.9); win_rate_interval(3, 10)\n"
        "posterior_positive(10, 0.2, 1.0)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'numpy'))\n"
        "assert not bad, bad\n"
    )
    _runs_clean(code)


def _runs_clean(code: str) -> None:
    """``code`` passes in a fresh interpreter (what it imports is not this process's)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@settings(max_examples=400, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=20_000),
    p=st.floats(min_value=0.001, max_value=0.999),
    confidence=_CONFIDENCE,
)
def test_binomial_quantile_is_scipy_binom_ppf(n: int, p: float, confidence: float) -> None:
    """The order-statistic ranks of the scalp trainer's quantile interval: integers, so equal."""
    from scipy import stats

    tail = (1 - confidence) / 2
    for q in (tail, 1 - tail):
        assert binom_ppf(q, n, p) == int(stats.binom.ppf(q, n, p)), (q, n, p)


@pytest.mark.parametrize(
    ("q", "n", "p"), [(0.0, 10, 0.5), (1.0, 10, 0.5), (0.3, 10, 0.0), (0.3, 10, 1.0), (0.5, 1, 0.5)]
)
def test_binomial_quantile_edges(q: float, n: int, p: float) -> None:
    from scipy import stats

    assert binom_ppf(q, n, p) == int(stats.binom.ppf(q, n, p))
    assert binom_cdf(3, 10, 0.25) == pytest.approx(float(stats.binom.cdf(3, 10, 0.25)), rel=1e-13)


def test_the_scalp_trainers_quantile_interval_does_not_import_scipy() -> None:
    """``scipy.stats`` (~0.4 s of import) was loaded by every scalp-train run for binom.ppf.

    (numba, which the trainer's counterfactual kernels need, still loads the ``scipy`` package
    itself: 9 ms, not its statistics.)"""
    code = (
        "import sys\n"
        "from autolearn.scalp_trainer.rules import quantile_interval\n"
        "quantile_interval([float(i) for i in range(50)], 0.85, 0.9)\n"
        "assert not [m for m in sys.modules if m.startswith(('scipy.stats', 'scipy.special'))]\n"
    )
    _runs_clean(code)


@pytest.mark.parametrize("p", [0.5, 0.25, 0.75, 0.125])
@pytest.mark.parametrize("n", [1, 2, 4, 7, 15, 42, 45])
def test_binomial_quantile_at_exact_ties(n: int, p: float) -> None:
    """Levels equal to a CDF value (the scalp trainer meets them: p = 1/2, confidence 0.875
    gives 1/16 at n = 7): the exact smallest k, computed here in rational arithmetic."""
    from fractions import Fraction

    def exact_cdf(k: int) -> Fraction:
        s, f = Fraction(p), 1 - Fraction(p)
        return sum((math.comb(n, i) * s**i * f ** (n - i) for i in range(k + 1)), Fraction(0))

    for k in range(n):
        level = float(exact_cdf(k))
        if not 0.0 < level < 1.0:
            continue
        expected = next(j for j in range(n + 1) if exact_cdf(j) >= Fraction(level))
        assert binom_ppf(level, n, p) == expected, (level, n, p)


@pytest.mark.parametrize("p", [1e-300, 2.6304078224383856e-271, 1e-50, 1 - 1e-16])
@pytest.mark.parametrize(("a", "b"), [(2.0, 1.125), (0.5, 0.5), (30.0, 4.0), (1.5, 800.0)])
def test_beta_quantile_in_the_deep_tails(p: float, a: float, b: float) -> None:
    """The first guess's exp() overflowed for p ~ 1e-271 (found by the inversion property)."""
    assert _close(beta_ppf(p, a, b), float(special.betaincinv(a, b, p)), 1e-9), (p, a, b)
