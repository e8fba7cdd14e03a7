"""Vectorised indicators for the reference strategies (numpy only, no loops over bars).

Every function returns an array as long as its input, NaN where the window is not yet full, so a
comparison with NaN is False and no signal fires during warm-up. Windows never look ahead: the
value at bar ``i`` uses bars ``<= i`` (``prev_*`` variants use bars ``< i``).

Pure: no I/O, no clock, no state.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

__all__ = ["prev_max", "prev_min", "rolling_mean", "rolling_percentile", "rolling_std", "rsi"]

F64 = NDArray[np.float64]


def _pad(values: F64, n_total: int) -> F64:
    out = np.full(n_total, np.nan)
    out[n_total - len(values) :] = values
    return out


def rolling_mean(x: F64, window: int) -> F64:
    """Simple moving average; each window summed on its own (no running-sum drift)."""
    if window > len(x):
        return np.full(len(x), np.nan)
    return _pad(sliding_window_view(x, window).mean(axis=1), len(x))


def rolling_std(x: F64, window: int) -> F64:
    """Population standard deviation (ddof 0, as Bollinger defined the bands)."""
    if window > len(x):
        return np.full(len(x), np.nan)
    return _pad(sliding_window_view(x, window).std(axis=1), len(x))


def rsi(close: F64, window: int) -> F64:
    """Cutler's RSI: simple means of gains and losses over ``window`` changes (no recursion).

    100 when there were no losses in the window, 0 when there were no gains, 50 when flat.
    """
    change = np.diff(close, prepend=np.nan)
    gain = rolling_mean(np.where(change > 0, change, 0.0), window)
    loss = rolling_mean(np.where(change < 0, -change, 0.0), window)
    gain[:window] = np.nan  # the first change is undefined
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total > 0, 100.0 * gain / total, 50.0)
    out[np.isnan(total)] = np.nan
    return out


def prev_max(x: F64, window: int) -> F64:
    """Max of the ``window`` bars before bar i (excludes bar i itself)."""
    out = np.full(len(x), np.nan)
    if window < len(x):
        out[window:] = sliding_window_view(x[:-1], window).max(axis=1)
    return out


def prev_min(x: F64, window: int) -> F64:
    """Min of the ``window`` bars before bar i (excludes bar i itself)."""
    out = np.full(len(x), np.nan)
    if window < len(x):
        out[window:] = sliding_window_view(x[:-1], window).min(axis=1)
    return out


def rolling_percentile(x: F64, window: int, pct: float) -> F64:
    """The ``pct`` percentile (0-100, linear) of the ``window`` bars before bar i."""
    out = np.full(len(x), np.nan)
    if window < len(x):
        out[window:] = np.percentile(sliding_window_view(x[:-1], window), pct, axis=1)
    return out
