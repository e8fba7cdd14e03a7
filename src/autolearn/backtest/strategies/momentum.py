"""Momentum breakout (the original's ``MomentumPulse`` + ``VolCompressionBreak`` knobs).

Long when the close breaks above the highest high of the previous ``lookback`` bars, at least
``min_confidence`` of those bars closed up (the pulse is consistent), and this bar's move is at
or above the ``accel_pctile`` percentile of absolute moves over the previous ``accel_window``
bars (the break accelerates); short is the mirror. Pure and vectorised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from autolearn.backtest.candles import Candles
from autolearn.backtest.strategies._base import Params, int_knob, range_knob
from autolearn.backtest.strategies._indicators import (
    prev_max,
    prev_min,
    rolling_mean,
    rolling_percentile,
)

__all__ = ["MomentumBreakout"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MomentumBreakout:
    """Knobs: ``lookback`` bars, ``min_confidence`` (0-1), ``accel_window``, ``accel_pctile``."""

    name: str = "momentum_breakout"
    defaults: Mapping[str, float] = field(
        default_factory=lambda: {
            "lookback": 20.0,
            "min_confidence": 0.65,
            "accel_window": 100.0,
            "accel_pctile": 75.0,
        }
    )

    def check(self, params: Params) -> list[str]:
        problems: list[str] = []
        int_knob(params, "lookback", 2, problems)
        int_knob(params, "accel_window", 2, problems)
        range_knob(params, "min_confidence", 0.0, 1.0, problems)
        range_knob(params, "accel_pctile", 0.0, 100.0, problems)
        return problems

    def signals(self, candles: Candles, param_sets: Sequence[Params]) -> NDArray[np.int8]:
        close = candles.close
        change = np.diff(close, prepend=np.nan)
        move = np.abs(change)
        out = np.zeros((len(param_sets), len(candles)), dtype=np.int8)
        for k, p in enumerate(param_sets):
            n = int(p["lookback"])
            # share of the previous n bars that closed up / down (bar i itself excluded)
            up_share = np.r_[np.nan, rolling_mean((change > 0).astype(np.float64), n)[:-1]]
            down_share = np.r_[np.nan, rolling_mean((change < 0).astype(np.float64), n)[:-1]]
            accel = move >= rolling_percentile(move, int(p["accel_window"]), p["accel_pctile"])
            with np.errstate(invalid="ignore"):
                up = (close > prev_max(candles.high, n)) & (up_share >= p["min_confidence"])
                down = (close < prev_min(candles.low, n)) & (down_share >= p["min_confidence"])
            out[k][up & accel] = 1
            out[k][down & accel] = -1
        return out
