"""The Student-t and Beta distribution functions the rules' intervals need, in pure Python.

Why not scipy: importing ``scipy.special`` costs ~0.35 s of CPU (numpy, ``scipy._lib`` and its
array-API layer), more than a whole tune cycle at a real bot's trade rate, and every ``tune`` and
``policy`` run paid it for a handful of quantiles (issue 16). These are the textbook methods,
held to scipy by ``tests/core/test_distributions.py`` (relative error <= 2e-12 for parameters up
to 10,000, <= 1e-10 up to a million; typically a few units in the last place):

- the regularized incomplete beta ``I_x(a, b)`` by its continued fraction (modified Lentz),
  with the power terms ``x^a (1-x)^b / B(a, b)`` computed through Stirling's series where an
  argument is large, so a million trades lose no digits to ``lgamma``'s cancellation;
- the t CDF through ``I_x(df/2, 1/2)``, the binomial CDF through ``I_{1-p}(n-k, k+1)``;
- quantiles by Newton steps on those CDFs inside a shrinking bracket (bisection whenever a step
  would leave it), always solving for the variable that is small so it keeps its relative
  precision (``t^2 / (df + t^2)``, not ``df / (df + t^2)``, for the t quantile).

Pure: no I/O, no state.
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["beta_ppf", "binom_cdf", "binom_ppf", "regularized_beta", "t_cdf", "t_ppf"]

_EPS = 1e-16  # continued fraction: stop when a step changes the value by less than this
_TINY = 1e-300  # Lentz's guard against a zero denominator
_MAX_TERMS = 200_000  # the fraction needs O(sqrt(max(a, b))) terms: ~2,000 at a million
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_STIRLING_FROM = 10.0  # below this, lgamma itself is exact enough (its values are small)
_STANDARD_NORMAL = NormalDist()
# From here the t quantile is its Cornish-Fisher expansion: the continued fraction would work in
# x = df / (df + t^2), whose rounding near 1 costs ~df * 1e-16 of relative precision.
_EXPANSION_FROM = 2000.0
_EXPANSION_TAIL = 2e-4  # ... in the tails it was measured in (0.75 to 0.9995); deeper, Newton


def _stirling_correction(z: float) -> float:
    """``lgamma(z) - ((z - 1/2) ln z - z + ln(2 pi) / 2)``: the small remainder of Stirling."""
    if z < _STIRLING_FROM:
        return math.lgamma(z) - ((z - 0.5) * math.log(z) - z + _HALF_LOG_2PI)
    w = 1.0 / (z * z)
    # the Bernoulli series; at z = 10 the next term is below 1e-19 of the sum
    series = 1 / 12 + w * (
        -1 / 360 + w * (1 / 1260 + w * (-1 / 1680 + w * (1 / 1188 + w * (-691 / 360360 + w / 156))))
    )
    return series / z


def _log_power_terms(a: float, b: float, x: float, y: float) -> float:
    """``ln(x^a y^b / B(a, b))`` with ``y = 1 - x`` given separately (either may be tiny)."""
    c = a + b
    if a >= _STIRLING_FROM and b >= _STIRLING_FROM:
        # Stirling's form: ln B's big terms cancel against a ln x + b ln y analytically,
        # leaving a ln(x c / a) + b ln(y c / b), each written as a log1p of a small deviation
        # (x b - y a is x c - a, since x + y = 1).
        dev = x * b - y * a
        corrections = _stirling_correction(a) + _stirling_correction(b) - _stirling_correction(c)
        # far from the mean (a tiny x or y) the log1p form would round its argument to -1
        term_a = a * math.log1p(dev / a) if dev > -0.5 * a else a * math.log(x * c / a)
        term_b = b * math.log1p(-dev / b) if dev < 0.5 * b else b * math.log(y * c / b)
        return term_a + term_b + 0.5 * math.log(a * b / (2 * math.pi * c)) - corrections
    ln_x = math.log1p(-y) if y < 0.5 else math.log(x)
    ln_y = math.log1p(-x) if x < 0.5 else math.log(y)
    if (
        a >= _STIRLING_FROM
    ):  # ln B = lgamma(b) + [lgamma(a) - lgamma(c)], the bracket without cancellation
        gap = -(a - 0.5) * math.log1p(b / a) - b * math.log(c) + b
        log_beta = math.lgamma(b) + gap + _stirling_correction(a) - _stirling_correction(c)
    elif b >= _STIRLING_FROM:
        gap = -(b - 0.5) * math.log1p(a / b) - a * math.log(c) + a
        log_beta = math.lgamma(a) + gap + _stirling_correction(b) - _stirling_correction(c)
    else:
        log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(c)
    return a * ln_x + b * ln_y - log_beta


def _continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of ``I_x(a, b)`` (modified Lentz); converges for x < (a+1)/(a+b+2)."""
    ab, a1, am1 = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - ab * x / a1
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_TERMS):
        m2 = 2 * m
        num = m * (b - m) * x / ((am1 + m2) * (a + m2))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + num / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        num = -(a + m) * (ab + m) * x / ((a + m2) * (a1 + m2))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + num / c
        c = c if abs(c) > _TINY else _TINY
        step = d * c
        h *= step
        if abs(step - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"incomplete beta did not converge for a={a}, b={b}, x={x}")


def _beta_pair(a: float, b: float, x: float, y: float) -> tuple[float, float]:
    """``(I_x(a, b), 1 - I_x(a, b))``, the smaller of the two computed directly."""
    if x <= 0.0:
        return (0.0, 1.0)
    if y <= 0.0:
        return (1.0, 0.0)
    if x < (a + 1.0) / (a + b + 2.0):
        low = math.exp(_log_power_terms(a, b, x, y)) * _continued_fraction(a, b, x) / a
        return (low, 1.0 - low)
    high = math.exp(_log_power_terms(b, a, y, x)) * _continued_fraction(b, a, y) / b
    return (1.0 - high, high)


def regularized_beta(a: float, b: float, x: float) -> float:
    """``I_x(a, b)``, the Beta(a, b) CDF at ``x`` (a, b > 0; x in [0, 1])."""
    if not (a > 0 and b > 0 and 0.0 <= x <= 1.0):
        raise ValueError(f"regularized_beta needs a, b > 0 and 0 <= x <= 1, got {a}, {b}, {x}")
    return _beta_pair(a, b, x, 1.0 - x)[0]


def _solve_small(a: float, b: float, target: float, complement: float, start: float) -> float:
    """The ``z`` in (0, 1) with ``I_z(a, b) = target``, for a ``z`` expected to be the small side.

    ``complement`` is ``1 - target`` as the caller knows it exactly: near 1 the error is measured
    on that side, where a double still has its digits.

    Newton on the CDF (its derivative is the density ``z^(a-1) (1-z)^(b-1) / B``) inside a bracket
    that every evaluation shrinks; a step that would leave the bracket bisects instead
    (geometrically while the bracket spans decades, so tiny roots are reached in few steps).
    """
    lo, hi = 0.0, 1.0
    z = min(max(start, 1e-300), 1.0 - 1e-16)
    for _ in range(400):
        low, high = _beta_pair(a, b, z, 1.0 - z)
        error = low - target if target <= 0.5 else complement - high  # the precise side
        if error == 0.0:
            return z
        if error < 0:
            lo = z
        else:
            hi = z
        density = math.exp(_log_power_terms(a, b, z, 1.0 - z)) / (z * (1.0 - z))
        step = error / density if density > 0 and math.isfinite(density) else math.inf
        nxt = z - step
        if not lo < nxt < hi:
            nxt = math.sqrt(lo * hi) if lo > 0 and hi / lo > 1e3 else 0.5 * (lo + hi)
            if lo == 0.0:
                nxt = hi * 1e-3 if hi > 1e-290 else 0.5 * hi
        if abs(nxt - z) <= 2e-16 * z or nxt in (lo, hi):
            return nxt
        z = nxt
    return z


def _beta_start(p: float, a: float, b: float) -> float:
    """A first guess at the Beta(a, b) ``p`` quantile (AS 109's normal approximation)."""
    if a > 1 and b > 1:
        w = _STANDARD_NORMAL.inv_cdf(p)
        r = (w * w - 3.0) / 6.0
        s, t = 1.0 / (2 * a - 1), 1.0 / (2 * b - 1)
        h = 2.0 / (s + t)
        u = w * math.sqrt(h + r) / h - (t - s) * (r + 5.0 / 6.0 - 2.0 / (3.0 * h))
        return a / (a + b * math.exp(min(-2.0 * u, 700.0)))  # deep tails: ~0, not overflow
    return a / (a + b)


def beta_ppf(p: float, a: float, b: float) -> float:
    """The ``p`` quantile of Beta(a, b): the ``x`` with ``I_x(a, b) = p`` (scipy's beta.ppf)."""
    if not (a > 0 and b > 0 and 0.0 <= p <= 1.0):
        raise ValueError(f"beta_ppf needs a, b > 0 and 0 <= p <= 1, got {p}, {a}, {b}")
    if p in (0.0, 1.0):
        return p
    if a == 1.0:  # I_x(1, b) = 1 - (1-x)^b
        return -math.expm1(math.log1p(-p) / b)
    if b == 1.0:  # I_x(a, 1) = x^a
        return math.exp(math.log(p) / a)
    start = _beta_start(p, a, b)
    if start <= 0.5:
        return _solve_small(a, b, p, 1.0 - p, start)
    return 1.0 - _solve_small(b, a, 1.0 - p, p, 1.0 - start)  # solve for 1 - x, the small side


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom (scipy's t.cdf / stdtr)."""
    if not df > 0 or math.isnan(t):
        raise ValueError(f"t_cdf needs df > 0 and a number, got t={t}, df={df}")
    square = t * t
    if square == 0.0:  # t == 0, or so small its square underflows: the CDF is 1/2 in doubles
        return 0.5
    ratio = df / square  # 0 when the square overflows: no inf / inf below
    x, y = ratio / (1.0 + ratio), 1.0 / (1.0 + ratio)  # x = df / (df + t^2), y = 1 - x
    tail = 0.5 * _beta_pair(0.5 * df, 0.5, x, y)[0]
    return 1.0 - tail if t > 0 else tail


def _cornish_fisher(q: float, df: float) -> float:
    """The upper ``q`` point of t by its Cornish-Fisher expansion in 1/df, to the 1/df^4 term.

    Closed forms for 1 and 2 degrees of freedom. From ``_EXPANSION_FROM`` degrees of freedom it
    is the answer (measured against scipy there: within 1.1e-15, a few units in the last place,
    for p from 0.75 to 0.9995); below, Newton's starting point.
    """
    if df == 1.0:  # Cauchy, exact
        return 1.0 / math.tan(math.pi * q)
    if df == 2.0:  # exact
        return (1 - 2 * q) / math.sqrt(2 * q * (1 - q))
    z = _STANDARD_NORMAL.inv_cdf(1.0 - q)
    w = z * z
    return z * (
        1
        + (w + 1) / (4 * df)
        + ((5 * w + 16) * w + 3) / (96 * df**2)
        + (((3 * w + 19) * w + 17) * w - 15) / (384 * df**3)
        + ((((79 * w + 776) * w + 1482) * w - 1920) * w - 945) / (92160 * df**4)
    )


def t_ppf(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (scipy's t.ppf)."""
    if not (df > 0 and 0.0 <= p <= 1.0):
        raise ValueError(f"t_ppf needs df > 0 and 0 <= p <= 1, got p={p}, df={df}")
    if p == 0.5:
        return 0.0
    if p in (0.0, 1.0):
        return math.copysign(math.inf, p - 0.5)
    q = min(p, 1.0 - p)  # the tail: P(|T| > t) = 2q
    guess = _cornish_fisher(q, df)
    if df in (1.0, 2.0) or (df >= _EXPANSION_FROM and q >= _EXPANSION_TAIL):
        return guess if p > 0.5 else -guess
    # Solve for whichever of y = t^2 / (df + t^2) and x = 1 - y is small, so it keeps its
    # relative precision: y for large df, x for few degrees of freedom deep in the tail.
    y_start = guess * guess / (df + guess * guess)
    if y_start <= 0.5:
        y = _solve_small(0.5, 0.5 * df, 1.0 - 2.0 * q, 2.0 * q, y_start)
        t = math.sqrt(df * y / (1.0 - y)) if y < 1.0 else math.inf
    else:
        x = _solve_small(0.5 * df, 0.5, 2.0 * q, 1.0 - 2.0 * q, 1.0 - y_start)
        t = math.sqrt(df * (1.0 - x) / x) if x > 0.0 else math.inf
    return t if p > 0.5 else -t


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p) (scipy's binom.cdf / bdtr)."""
    if not (n >= 0 and 0.0 <= p <= 1.0):
        raise ValueError(f"binom_cdf needs n >= 0 and 0 <= p <= 1, got n={n}, p={p}")
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p == 0.0:
        return 1.0
    if p == 1.0:
        return 0.0
    return _beta_pair(n - k, k + 1.0, 1.0 - p, p)[0]


def binom_ppf(q: float, n: int, p: float) -> int:
    """The smallest ``k`` with P(X <= k) >= ``q``, X ~ Binomial(n, p) (scipy's binom.ppf).

    As scipy: -1 for ``q == 0`` (below the support) and ``n`` for ``q == 1``. A walk from the
    normal approximation, one CDF per step (a few steps: the guess is within ~1 of the answer).
    At an exact tie (``q`` equal to a CDF value, e.g. 1/16 for p = 1/2, n = 7) the answer is the
    exact one for up to ``_EXACT_UP_TO`` trials, where scipy's rounding goes either way.
    """
    if not (n >= 0 and 0.0 <= p <= 1.0 and 0.0 <= q <= 1.0):
        raise ValueError(f"binom_ppf needs n >= 0 and 0 <= p, q <= 1, got q={q}, n={n}, p={p}")
    if q == 0.0:
        return -1
    if q == 1.0 or p == 1.0:
        return n
    if p == 0.0:
        return 0
    spread = math.sqrt(n * p * (1.0 - p))
    k = min(n, max(0, math.floor(n * p + _STANDARD_NORMAL.inv_cdf(q) * spread)))
    while k < n and not _cdf_reaches(k, n, p, q):
        k += 1
    while k > 0 and _cdf_reaches(k - 1, n, p, q):
        k -= 1
    return k


_TIE = 1e-12  # a CDF this close to the level may be an exact tie that rounding moved
_EXACT_UP_TO = 2_000  # trials for which a near tie is settled in exact rational arithmetic


def _cdf_reaches(k: int, n: int, p: float, q: float) -> bool:
    """``P(X <= k) >= q``. Ties are real here: for p = 1/2 and n = 7, P(X <= 1) is exactly
    1/16, which the continued fraction returns a unit in the last place low; so a CDF within
    ``_TIE`` of ``q`` is compared exactly (the float inputs are exact dyadic rationals)."""
    cdf = binom_cdf(k, n, p)
    if abs(cdf - q) > _TIE * q or n > _EXACT_UP_TO:
        return cdf >= q
    from fractions import Fraction

    success, failure = Fraction(p), 1 - Fraction(p)
    exact = sum(math.comb(n, i) * success**i * failure ** (n - i) for i in range(k + 1))
    return exact >= Fraction(q)
