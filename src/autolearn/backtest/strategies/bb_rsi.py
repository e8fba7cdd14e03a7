"""Bollinger/RSI mean reversion (the original's ``BB_RSI_Fast``): fade closes outside the bands.

Long when the close is below the lower band and RSI is below ``rsi_low``; short when above the
upper band and RSI above ``rsi_high``. ``reentry_block_s`` is the original's knob: after a signal,
further signals are suppressed until that many seconds have passed (on bar data a block shorter
than one bar has no effect). Pure; the block is a short loop over the few raw signals only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from autolearn.backtest.candles import Candles
from autolearn.backtest.strategies._base import Params, int_knob, range_knob
from autolearn.backtest.strategies._indicators import rolling_mean, rolling_std, rsi

__all__ = ["BbRsiRevert", "block_reentry"]


def block_reentry(signals: NDArray[np.int8], time_us: NDArray[np.int64], block_s: float) -> None:
    """Zero (in place) every signal less than ``block_s`` seconds after the last kept one."""
    if block_s <= 0:
        return
    block_us = block_s * 1_000_000
    last = None
    for i in np.flatnonzero(signals):
        if last is not None and time_us[i] - time_us[last] < block_us:
            signals[i] = 0
        else:
            last = i


@dataclass(frozen=True, slots=True, kw_only=True)
class BbRsiRevert:
    """Knobs: band window/width, RSI window and thresholds, and the re-entry block in seconds."""

    name: str = "bb_rsi"
    defaults: Mapping[str, float] = field(
        default_factory=lambda: {
            "bb_window": 20.0,
            "bb_k": 2.0,
            "rsi_window": 14.0,
            "rsi_low": 30.0,
            "rsi_high": 70.0,
            "reentry_block_s": 15.0,
        }
    )

    def check(self, params: Params) -> list[str]:
        problems: list[str] = []
        int_knob(params, "bb_window", 2, problems)
        int_knob(params, "rsi_window", 1, problems)
        range_knob(params, "bb_k", 0.0, 10.0, problems)
        range_knob(params, "rsi_low", 0.0, 100.0, problems)
        range_knob(params, "rsi_high", 0.0, 100.0, problems)
        range_knob(params, "reentry_block_s", 0.0, 86_400.0, problems)
        if not problems and params["rsi_low"] >= params["rsi_high"]:
            problems.append(f"rsi_low ({params['rsi_low']}) must be < rsi_high")
        return problems

    def signals(self, candles: Candles, param_sets: Sequence[Params]) -> NDArray[np.int8]:
        close = candles.close
        out = np.zeros((len(param_sets), len(candles)), dtype=np.int8)
        for k, p in enumerate(param_sets):
            mid = rolling_mean(close, int(p["bb_window"]))
            width = p["bb_k"] * rolling_std(close, int(p["bb_window"]))
            strength = rsi(close, int(p["rsi_window"]))
            with np.errstate(invalid="ignore"):
                out[k][(close < mid - width) & (strength < p["rsi_low"])] = 1
                out[k][(close > mid + width) & (strength > p["rsi_high"])] = -1
            block_reentry(out[k], candles.time_us, p["reentry_block_s"])
        return out
