"""The compiled inner loop of the backtest engine: one numba function for many parameter sets.

Rules (the engine's contract; ``engine.py`` documents them for users):

* A signal on bar ``i`` (decided at its close) acts at the open of bar ``i + 1``.
* At that open, first an opposite signal closes the open position (``SIGNAL``) when
  ``exit_on_signal`` is set; then, if flat, a non-zero signal opens a position. Same-direction
  signals while in a position are ignored: one position at a time per parameter set.
* Prices are mid. A position opens at ``mid + side * half_spread`` and closes at
  ``mid - side * half_spread``, so a round trip with no move costs the full spread. SL/TP levels
  are ``entry -/+ side * distance`` and trigger on the closing side of the quote.
* Within a bar: an open already through SL or TP (a gap) fills at the open; otherwise SL is
  checked before TP, so a bar that touches both is a loss (conservative); touched levels fill
  at the level. Then, at the close, a position held ``timeout`` bars exits (``TIMEOUT``), and a
  position still open on the last bar exits at its close (``END``).

Compile once, cached on disk (``cache=True``, in ``__pycache__`` next to this file, gitignored).
Must not allocate per bar or call Python objects: it is the hot path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

__all__ = ["REASON_END", "REASON_SIGNAL", "REASON_SL", "REASON_TIMEOUT", "REASON_TP", "simulate"]

REASON_SL, REASON_TP, REASON_TIMEOUT, REASON_SIGNAL, REASON_END = 0, 1, 2, 3, 4


@njit(cache=True)
def simulate(  # noqa: C901 - one flat loop is the point of a kernel
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    signals: np.ndarray,
    sl_dist: np.ndarray,
    tp_dist: np.ndarray,
    timeout: np.ndarray,
    exit_on_signal: np.ndarray,
    half_spread: float,
    pip: float,
    capacity: int,
) -> tuple[Any, ...]:
    """Simulate every row of ``signals`` (shape sets x bars); return trades and per-set sums.

    Trades beyond ``capacity`` are counted but not stored; the caller retries with the count.
    """
    n_sets, n = signals.shape
    t_set = np.empty(capacity, np.int64)
    t_entry = np.empty(capacity, np.int64)
    t_exit = np.empty(capacity, np.int64)
    t_side = np.empty(capacity, np.int8)
    t_entry_px = np.empty(capacity, np.float64)
    t_exit_px = np.empty(capacity, np.float64)
    t_reason = np.empty(capacity, np.int8)
    s_n = np.zeros(n_sets, np.int64)
    s_wins = np.zeros(n_sets, np.int64)
    s_gross_win = np.zeros(n_sets, np.float64)
    s_gross_loss = np.zeros(n_sets, np.float64)
    s_max_dd = np.zeros(n_sets, np.float64)
    count = 0
    for s in range(n_sets):
        pos = 0
        e = 0
        entry_px = 0.0
        sl_px = 0.0
        tp_px = 0.0
        cum = 0.0
        peak = 0.0
        has_sl = sl_dist[s] > 0.0
        has_tp = tp_dist[s] > 0.0
        for i in range(n):
            sig = signals[s, i - 1] if i > 0 else 0
            # phase 0: the open of bar i acts on bar i-1's signal; phase 1: the rest of bar i
            for phase in range(2):
                exit_px = 0.0
                reason = -1
                if phase == 0:
                    if pos != 0 and sig == -pos and exit_on_signal[s]:
                        exit_px, reason = open_[i] - pos * half_spread, REASON_SIGNAL
                elif pos != 0:
                    o = open_[i] - pos * half_spread  # the closing side of the quote
                    adverse = (low[i] if pos > 0 else high[i]) - pos * half_spread
                    favour = (high[i] if pos > 0 else low[i]) - pos * half_spread
                    if has_sl and pos * (o - sl_px) <= 0.0:
                        exit_px, reason = o, REASON_SL  # gapped through (or spread >= SL)
                    elif has_tp and pos * (o - tp_px) >= 0.0:
                        exit_px, reason = o, REASON_TP
                    elif has_sl and pos * (adverse - sl_px) <= 0.0:
                        exit_px, reason = sl_px, REASON_SL  # SL before TP: conservative
                    elif has_tp and pos * (favour - tp_px) >= 0.0:
                        exit_px, reason = tp_px, REASON_TP
                    elif timeout[s] > 0 and i - e + 1 >= timeout[s]:
                        exit_px, reason = close[i] - pos * half_spread, REASON_TIMEOUT
                    elif i == n - 1:
                        exit_px, reason = close[i] - pos * half_spread, REASON_END
                if reason >= 0:
                    pips = pos * (exit_px - entry_px) / pip
                    if count < capacity:
                        t_set[count] = s
                        t_entry[count] = e
                        t_exit[count] = i
                        t_side[count] = pos
                        t_entry_px[count] = entry_px
                        t_exit_px[count] = exit_px
                        t_reason[count] = reason
                    count += 1
                    s_n[s] += 1
                    if pips > 0.0:
                        s_wins[s] += 1
                        s_gross_win[s] += pips
                    else:
                        s_gross_loss[s] -= pips
                    cum += pips
                    peak = max(peak, cum)
                    s_max_dd[s] = max(s_max_dd[s], peak - cum)
                    pos = 0
                if phase == 0 and pos == 0 and sig != 0:
                    pos = sig
                    e = i
                    entry_px = open_[i] + pos * half_spread
                    sl_px = entry_px - pos * sl_dist[s]
                    tp_px = entry_px + pos * tp_dist[s]
    return (
        np.int64(count),
        t_set,
        t_entry,
        t_exit,
        t_side,
        t_entry_px,
        t_exit_px,
        t_reason,
        s_n,
        s_wins,
        s_gross_win,
        s_gross_loss,
        s_max_dd,
    )
