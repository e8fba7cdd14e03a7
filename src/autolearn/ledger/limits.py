"""The ledger's plausibility limits from ``config/ledger.yaml`` (tracked; optional).

    # config/ledger.yaml: every key optional, defaults in autolearn.core.plausibility
    future_tolerance: 5m
    max_abs_pl_pips: 100000
    max_abs_pl_account: 1.0e12
    max_units: 1000000000000
    max_price: 1.0e7
    max_abs_signal_pips: 100000
    max_abs_signal_score: 1.0e9
    max_signal_timeout_s: 2592000

A thin shell over the one config loader: unknown keys, wrong types and non-positive limits are
a ``ConfigError`` (exit 78) with the dotted path. It decides nothing.
"""

from __future__ import annotations

from pathlib import Path

from autolearn.core.config_loader import load_config
from autolearn.core.plausibility import TradeLimits

__all__ = ["LIMITS_FILE", "load_trade_limits"]

LIMITS_FILE = "config/ledger.yaml"


def load_trade_limits(bot_root: Path | None) -> TradeLimits:
    """The limits of ``<bot_root>/config/ledger.yaml``, the defaults when there is none."""
    if bot_root is None:
        return TradeLimits()
    path = bot_root / LIMITS_FILE
    if not path.exists():
        return TradeLimits()
    from autolearn.adapters.yamlio import load_yaml

    return load_config(TradeLimits, load_yaml(path), str(path))
