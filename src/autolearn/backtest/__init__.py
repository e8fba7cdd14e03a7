"""Candle loading and the fast bar-based backtest engine (issue 5).

``load_candles`` reads every candle format in shared/data/fx into one UTC ``Candles`` value;
``run_grid`` / ``run_one`` backtest reference strategies over many knob sets in one compiled
loop. Importing this package has no side effects beyond importing numpy and numba.
"""

from __future__ import annotations

from autolearn.backtest.candles import CandleFormat, Candles, LoadReport, RejectedRow, load_candles
from autolearn.backtest.engine import (
    Cost,
    ExitReason,
    GridResult,
    RunResult,
    Summary,
    TradeList,
    expand_grid,
    run_grid,
    run_one,
)
from autolearn.backtest.strategies import STRATEGIES, Strategy, get_strategy

__all__ = [
    "STRATEGIES",
    "CandleFormat",
    "Candles",
    "Cost",
    "ExitReason",
    "GridResult",
    "LoadReport",
    "RejectedRow",
    "RunResult",
    "Strategy",
    "Summary",
    "TradeList",
    "expand_grid",
    "get_strategy",
    "load_candles",
    "run_grid",
    "run_one",
]
