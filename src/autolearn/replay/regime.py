"""A simple causal regime classifier on candles, so replayed trades carry regime labels.

The tuner's allocation rule reads ``regime_micro`` / ``regime_macro`` at entry (never the
pocket). QuantRabbit's exports lacked them; the replay computes them from the candles, causally
(the label of bar ``i`` uses bars ``<= i`` only), with two cheap, documented measures:

* ``regime_micro`` (volatility): Bollinger band width ``BBW = 4 * std20 / sma20`` relative to its
  own mean over the previous ``1440`` bars (one day of M1). Below ``0.75`` of that mean:
  ``quiet_low_vol``; above ``1.4``: ``high_vol``; else ``normal_vol``.
* ``regime_macro`` (direction): Kaufman's efficiency ratio over ``60`` bars,
  ``|c[i] - c[i-60]| / sum(|c[k] - c[k-1]|)``. At or above ``0.17``: ``trend``; else ``range``
  (the ADX-like question "is price going somewhere or churning?", without Wilder's recursion;
  0.17 is about the upper quartile on EUR/USD M1, July 2018: M1 prices mostly churn).

Bars before a window is full carry ``""`` (unlabelled), as a live bot would at start-up.
Pure: numpy only, no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from autolearn.backtest.strategies._indicators import rolling_mean, rolling_std

__all__ = ["MACRO_LABELS", "MICRO_LABELS", "RegimeParams", "classify"]

MICRO_LABELS = ("", "quiet_low_vol", "normal_vol", "high_vol")
MACRO_LABELS = ("", "range", "trend")


@dataclass(frozen=True, slots=True, kw_only=True)
class RegimeParams:
    """Windows and thresholds of the classifier (see the module docstring)."""

    bb_window: int = 20
    bbw_baseline: int = 1440
    quiet_below: float = 0.75
    high_above: float = 1.4
    er_window: int = 60
    trend_er: float = 0.17


def _prev_mean(x: NDArray[np.float64], window: int) -> NDArray[np.float64]:
    """Mean of the ``window`` values before index i (NaN-free windows only), via cumsum."""
    out = np.full(len(x), np.nan)
    valid = np.isfinite(x)
    filled = np.where(valid, x, 0.0)
    csum = np.concatenate(([0.0], np.cumsum(filled)))
    ccount = np.concatenate(([0], np.cumsum(valid)))
    if len(x) > window:
        idx = np.arange(window, len(x))
        total = csum[idx] - csum[idx - window]
        count = ccount[idx] - ccount[idx - window]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[window:] = np.where(count == window, total / np.maximum(count, 1), np.nan)
    return out


def classify(
    close: NDArray[np.float64], params: RegimeParams | None = None
) -> tuple[NDArray[np.int8], NDArray[np.int8]]:
    """Per-bar label codes: ``(micro, macro)`` indexing ``MICRO_LABELS`` / ``MACRO_LABELS``."""
    p = params or RegimeParams()
    n = len(close)
    mean = rolling_mean(close, p.bb_window)
    std = rolling_std(close, p.bb_window)
    with np.errstate(invalid="ignore", divide="ignore"):
        bbw = 4.0 * std / mean
        ratio = bbw / _prev_mean(bbw, p.bbw_baseline)
    micro = np.zeros(n, dtype=np.int8)
    known = np.isfinite(ratio)
    micro[known] = 2
    micro[known & (ratio < p.quiet_below)] = 1
    micro[known & (ratio > p.high_above)] = 3
    macro = np.zeros(n, dtype=np.int8)
    if n > p.er_window:
        step = np.abs(np.diff(close, prepend=close[0]))
        csum = np.cumsum(step)
        w = p.er_window
        path = csum[w:] - csum[:-w]
        net = np.abs(close[w:] - close[:-w])
        with np.errstate(invalid="ignore", divide="ignore"):
            er = np.where(path > 0, net / np.where(path > 0, path, 1.0), 0.0)
        macro[w:] = np.where(er >= p.trend_er, 2, 1)
    return micro, macro
