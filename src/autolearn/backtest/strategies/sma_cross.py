"""SMA crossover: long when the fast mean crosses above the slow one, short when it crosses below.

A cross at bar ``i`` needs ``fast < slow`` at ``i - 1`` and ``fast > slow`` at ``i`` (strict on
both bars, the rule backtesting.py's ``crossover`` uses). So a tie never fires, and neither does
a pass *through* an exact tie (below, equal, above): the next clean cross does. Exact ties are
real on decimal prices (a few per month of EUR/USD M1 bars) and are detected robustly.
Pure and vectorised; no positions or exits here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from autolearn.backtest.candles import Candles
from autolearn.backtest.strategies._base import Params, int_knob
from autolearn.backtest.strategies._indicators import rolling_mean

__all__ = ["SmaCross", "cross_signals"]


def cross_signals(fast: NDArray[np.float64], slow: NDArray[np.float64]) -> NDArray[np.int8]:
    """+1 where ``fast`` crosses above ``slow`` at bar i, -1 where below, else 0.

    Means closer than 1e-12 relative count as a tie: two means of the same decimal prices that
    are equal in exact arithmetic can differ in the last bit depending on summation order, and a
    cross must not depend on that (the tolerance is 8 orders of magnitude below a pip).
    """
    out = np.zeros(len(fast), dtype=np.int8)
    diff = fast - slow
    with np.errstate(invalid="ignore"):
        side = np.where(np.abs(diff) <= 1e-12 * np.abs(slow), 0.0, np.sign(diff))
    up = (side[:-1] < 0) & (side[1:] > 0)
    down = (side[:-1] > 0) & (side[1:] < 0)
    out[1:][up] = 1
    out[1:][down] = -1
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class SmaCross:
    """Knobs: ``fast`` and ``slow`` window lengths in bars (``fast < slow``)."""

    name: str = "sma_cross"
    defaults: Mapping[str, float] = field(default_factory=lambda: {"fast": 10.0, "slow": 20.0})

    def check(self, params: Params) -> list[str]:
        problems: list[str] = []
        int_knob(params, "fast", 1, problems)
        int_knob(params, "slow", 2, problems)
        if not problems and params["fast"] >= params["slow"]:
            problems.append(f"fast ({params['fast']}) must be < slow ({params['slow']})")
        return problems

    def signals(self, candles: Candles, param_sets: Sequence[Params]) -> NDArray[np.int8]:
        out = np.zeros((len(param_sets), len(candles)), dtype=np.int8)
        means: dict[int, NDArray[np.float64]] = {}  # one mean per distinct window per call
        for k, params in enumerate(param_sets):
            fast, slow = int(params["fast"]), int(params["slow"])
            for window in (fast, slow):
                if window not in means:
                    means[window] = rolling_mean(candles.close, window)
            out[k] = cross_signals(means[fast], means[slow])
        return out
