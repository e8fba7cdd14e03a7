"""Reference strategies for the backtest engine: an explicit registry, keyed by config name.

Add a strategy by writing one module that satisfies :class:`Strategy` (``_base.py``) and one
line below. No discovery by import side effects: the registry is this dict.
"""

from __future__ import annotations

from autolearn.backtest.strategies._base import Params, Strategy
from autolearn.backtest.strategies.bb_rsi import BbRsiRevert
from autolearn.backtest.strategies.momentum import MomentumBreakout
from autolearn.backtest.strategies.sma_cross import SmaCross
from autolearn.errors import ConfigError

__all__ = [
    "STRATEGIES",
    "BbRsiRevert",
    "MomentumBreakout",
    "Params",
    "SmaCross",
    "Strategy",
    "get_strategy",
]

STRATEGIES: dict[str, Strategy] = {
    "sma_cross": SmaCross(),
    "bb_rsi": BbRsiRevert(),
    "momentum_breakout": MomentumBreakout(),
}


def get_strategy(name: str) -> Strategy:
    """The registered strategy called ``name`` (ConfigError listing the known names otherwise)."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"unknown strategy {name!r}; known: {sorted(STRATEGIES)}") from None
