"""The compiled counterfactual loop: many independent entries over one set of candles.

Each entry is simulated on its own, with the backtest engine's rules (``backtest/_kernel.py``):

* it opens at the open of ``entry_bar`` (the bar after the decision bar) at
  ``mid + side * half_spread``; it closes at ``mid - side * half_spread``;
* SL/TP levels are ``entry -/+ side * distance`` (0 = off), checked on the closing side of the
  quote from the entry bar on; an open already through a level (a gap) fills at that open;
  otherwise SL is checked before TP, so a bar touching both is a loss; touched levels fill at
  the level; a position held ``timeout`` bars (0 = off) exits at that bar's close; one still
  open on the last bar exits at its close (``END``).

The spread may differ per bar: a fill on bar ``i`` uses ``half_spread[i]``. With a constant
array the result equals the engine's trade by trade.

The model's approximation: positions are INDEPENDENT. The engine (and the bot) hold one position
at a time, so a signal arriving while a position is open is not taken there; here every entry
gets its own position. That is what a counterfactual needs (what would this signal have made),
and ``mismatch.check_recorded`` guards it: where the bot's recorded P/L disagrees with the
simulation of its own taken signals, the model is not trusted.

Compiled once and cached on disk (``cache=True``). No allocation per bar, no Python objects.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

__all__ = [
    "REASON_END",
    "REASON_NONE",
    "REASON_SL",
    "REASON_TIMEOUT",
    "REASON_TP",
    "simulate_entries",
]

# The backtest engine's codes (REASONS indexes), plus NONE for an entry that could not run.
REASON_NONE, REASON_SL, REASON_TP, REASON_TIMEOUT, REASON_END = -1, 0, 1, 2, 4


@njit(cache=True)
def simulate_entries(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    entry_bar: np.ndarray,
    side: np.ndarray,
    sl_dist: np.ndarray,
    tp_dist: np.ndarray,
    timeout: np.ndarray,
    half_spread: np.ndarray,
    pip: float,
) -> tuple[Any, ...]:
    """Simulate entry ``k`` from the open of ``entry_bar[k]``; return per-entry exit columns.

    Distances are in price units; ``side`` is +1/-1. An ``entry_bar`` outside the candles or a
    side of 0 yields exit bar -1, NaN prices and pips, reason ``REASON_NONE``.
    Returns ``(exit_bar, entry_px, exit_px, pips, reason)``.
    """
    n = open_.shape[0]
    m = entry_bar.shape[0]
    out_bar = np.full(m, -1, np.int64)
    out_entry = np.full(m, np.nan)
    out_exit = np.full(m, np.nan)
    out_pips = np.full(m, np.nan)
    out_reason = np.full(m, REASON_NONE, np.int8)
    for k in range(m):
        e = entry_bar[k]
        pos = side[k]
        if e < 0 or e >= n or pos == 0:
            continue
        entry_px = open_[e] + pos * half_spread[e]
        has_sl = sl_dist[k] > 0.0
        has_tp = tp_dist[k] > 0.0
        sl_px = entry_px - pos * sl_dist[k]
        tp_px = entry_px + pos * tp_dist[k]
        exit_px = 0.0
        reason = REASON_NONE
        i = e
        while i < n:
            hs = half_spread[i]
            o = open_[i] - pos * hs  # the closing side of the quote
            adverse = (low[i] if pos > 0 else high[i]) - pos * hs
            favour = (high[i] if pos > 0 else low[i]) - pos * hs
            if has_sl and pos * (o - sl_px) <= 0.0:
                exit_px, reason = o, REASON_SL  # gapped through (or spread >= SL)
            elif has_tp and pos * (o - tp_px) >= 0.0:
                exit_px, reason = o, REASON_TP
            elif has_sl and pos * (adverse - sl_px) <= 0.0:
                exit_px, reason = sl_px, REASON_SL  # SL before TP: conservative
            elif has_tp and pos * (favour - tp_px) >= 0.0:
                exit_px, reason = tp_px, REASON_TP
            elif timeout[k] > 0 and i - e + 1 >= timeout[k]:
                exit_px, reason = close[i] - pos * hs, REASON_TIMEOUT
            elif i == n - 1:
                exit_px, reason = close[i] - pos * hs, REASON_END
            if reason != REASON_NONE:
                break
            i += 1
        out_bar[k] = i
        out_entry[k] = entry_px
        out_exit[k] = exit_px
        out_pips[k] = pos * (exit_px - entry_px) / pip
        out_reason[k] = reason
    return out_bar, out_entry, out_exit, out_pips, out_reason
