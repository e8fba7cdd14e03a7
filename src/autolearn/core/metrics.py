"""Trade metrics: the one definition of PF, win rate, expectancy and drawdown.

The tuner, the policy cycle and the perf guard all call this module, in configurable units
(pips or account currency), so two components can never disagree on the same trades (the
original's policy used pips and its perf guard JPY, with three different PF edge cases).

Edge cases, chosen so that *no evidence* never reads as *bad evidence*:
- no trades: every ratio is NaN (callers treat NaN as "insufficient", never as a block);
- no losses: PF is ``inf`` when there is profit, NaN when every trade was flat (the original
  blocked all-flat pockets with PF 0);
- a flat trade (P/L exactly 0) is neither a win nor a loss but counts in ``n``.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from autolearn.core.distributions import beta_ppf, t_ppf
from autolearn.core.model import Trade

__all__ = [
    "Stats",
    "Units",
    "expectancy_interval",
    "interval_of",
    "max_drawdown",
    "pnl",
    "summarize",
    "trailing_loss_streak",
    "win_rate_interval",
]


class Units(StrEnum):
    """Which P/L a metric is computed on."""

    PIPS = "pips"
    ACCOUNT = "account"


def pnl(trades: Iterable[Trade], units: Units = Units.PIPS) -> list[float]:
    """The P/L of each trade in ``units``, in the given order."""
    if units is Units.PIPS:
        return [t.pl_pips for t in trades]
    return [t.pl_account for t in trades]


@dataclass(frozen=True, slots=True)
class Stats:
    """Summary of a P/L sample."""

    n: int
    wins: int
    losses: int
    net: float
    gross_profit: float
    gross_loss: float  # positive number
    expectancy: float  # mean P/L per trade; NaN when n == 0
    std: float  # sample standard deviation (ddof 1); NaN when n < 2
    win_rate: float  # wins / n; NaN when n == 0
    profit_factor: float  # gross_profit / gross_loss; inf / NaN per the module docstring

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON-friendly (NaN and inf become None and a large sentinel-free string)."""
        out: dict[str, float | int | None] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                out[name] = None if math.isnan(value) else (1e9 if value > 0 else -1e9)
            else:
                out[name] = round(value, 6) if isinstance(value, float) else value
        return out


def _sum(values: Iterable[float]) -> float:
    """``math.fsum``, but an overflowing sum is +-inf (or NaN), never an ``OverflowError``."""
    items = list(values)
    try:
        return math.fsum(items)
    except OverflowError:  # finite inputs whose exact sum exceeds the float range
        return sum(items)


def _std(values: Sequence[float], mean: float) -> float:
    """Sample sd (ddof 1), overflow-safe: deviations are scaled by the largest one first.

    ``(v - mean) ** 2`` raises ``OverflowError`` for ``|v - mean| > 1.3e154``; one absurd
    trade must make the spread infinite (so every rule reads "insufficient"), not crash.
    """
    if not math.isfinite(mean):
        return math.nan
    deviations = [v - mean for v in values]
    largest = max(map(abs, deviations))
    if largest == 0:
        return 0.0
    if not math.isfinite(largest):
        return math.inf if not math.isnan(largest) else math.nan
    scaled = math.fsum([(d / largest) * (d / largest) for d in deviations])
    return largest * math.sqrt(scaled / (len(values) - 1))


def summarize(values: Sequence[float]) -> Stats:
    """Stats of a P/L sample. Never raises on finite input, however large (see ``_std``)."""
    if isinstance(values, list) and len(values) >= _MEMO_MIN and set(map(type, values)) == {float}:
        # The mechanisms summarize the same windows cycle after cycle: memoized by the exact
        # bits of the sample (so -0.0 and 0.0, or two NaNs, are never confused).
        return _summarize_bits(array("d", values).tobytes())
    return _summarize(values)


_MEMO_MIN = 8  # below this, building the key costs about what the summary does


@lru_cache(maxsize=2048)
def _summarize_bits(bits: bytes) -> Stats:
    samples = array("d")
    samples.frombytes(bits)
    return _summarize(samples.tolist())


def _summarize(values: Sequence[float]) -> Stats:
    n = len(values)
    gains = [v for v in values if v > 0]
    drops = [v for v in values if v < 0]
    wins = len(gains)
    gross_profit = _sum(gains)
    gross_loss = -_sum(drops)
    net = _sum(values)
    expectancy = net / n if n else math.nan
    std = _std(values, expectancy) if n >= 2 else math.nan
    if gross_loss > 0:
        pf = gross_profit / gross_loss
    else:
        pf = math.inf if gross_profit > 0 else math.nan
    return Stats(
        n=n,
        wins=wins,
        losses=len(drops),
        net=net,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        expectancy=expectancy,
        std=std,
        win_rate=wins / n if n else math.nan,
        profit_factor=pf,
    )


def expectancy_interval(values: Sequence[float], confidence: float = 0.9) -> tuple[float, float]:
    """Two-sided Student-t interval of the mean P/L (NaN, NaN when n < 2).

    Evidence with uncertainty: a rule acts when the whole interval is past a threshold, not
    when a 15-minute point estimate is.
    """
    return interval_of(summarize(values), confidence)


def interval_of(s: Stats, confidence: float = 0.9) -> tuple[float, float]:
    """``expectancy_interval`` of a sample already summarized (``s``): no second pass over it."""
    if s.n < 2 or not math.isfinite(s.std):
        return (math.nan, math.nan)
    if s.std == 0:
        return (s.expectancy, s.expectancy)
    half = _t_quantile(0.5 + confidence / 2, s.n - 1) * s.std / math.sqrt(s.n)
    return (s.expectancy - half, s.expectancy + half)


# The mechanisms ask for the same few quantiles every cycle (one per sample size): a replayed
# month made ~50,000 such calls. Pure Python (core/distributions.py): importing scipy for them
# cost more than the tune cycle itself.
@lru_cache(maxsize=8192)
def _t_quantile(p: float, df: int) -> float:
    return t_ppf(p, df)


@lru_cache(maxsize=8192)
def _beta_quantile(p: float, a: float, b: float) -> float:
    return beta_ppf(p, a, b)


def win_rate_interval(
    wins: int, n: int, confidence: float = 0.9, prior: tuple[float, float] = (1.0, 1.0)
) -> tuple[float, float]:
    """Equal-tailed Beta-posterior interval of the win rate (uniform prior by default)."""
    if n <= 0:
        return (math.nan, math.nan)
    a, b = prior[0] + wins, prior[1] + (n - wins)
    tail = (1 - confidence) / 2
    return (_beta_quantile(tail, a, b), _beta_quantile(1 - tail, a, b))


def max_drawdown(values: Sequence[float]) -> float:
    """Largest peak-to-trough fall of the cumulative P/L (>= 0; 0 for no trades)."""
    peak = 0.0
    equity = 0.0
    worst = 0.0
    for v in values:
        equity += v
        peak = max(peak, equity)
        worst = max(worst, peak - equity)
    return worst


def trailing_loss_streak(values: Sequence[float]) -> int:
    """Consecutive losing trades at the end of the sample (flats break a streak)."""
    streak = 0
    for v in reversed(values):
        if v < 0:
            streak += 1
        else:
            break
    return streak
