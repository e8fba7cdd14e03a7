"""Builders for the gates tests: trades and shadow signals with sensible defaults."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from autolearn.core.model import ShadowSignal, Side, Trade

_ids = itertools.count(1)


def _trade(*, close_at: datetime, pl_pips: float, **over: Any) -> Trade:
    n = next(_ids)
    fields: dict[str, Any] = {
        "broker_trade_id": f"T{n:07d}",
        "close_tx_id": f"X{n:07d}",
        "instrument": "USD_JPY",
        "pocket": "micro",
        "strategy": "MomentumPulse",
        "side": Side.LONG,
        "units": 1000,
        "entry_price": 150.0,
        "close_price": 150.0 + pl_pips * 0.01,
        "entry_at": close_at - timedelta(minutes=5),
        "close_at": close_at,
        "pl_pips": pl_pips,
        "pl_account": pl_pips * 10.0,
    }
    fields.update(over)
    return Trade(**fields)


def _signal(*, at: datetime, outcome_pips: float | None, **over: Any) -> ShadowSignal:
    n = next(_ids)
    fields: dict[str, Any] = {
        "signal_id": f"S{n:07d}",
        "at": at,
        "instrument": "USD_JPY",
        "pocket": "micro",
        "strategy": "MomentumPulse",
        "side": Side.LONG,
        "price": 150.0,
        "outcome_pips": outcome_pips,
        "outcome_at": None if outcome_pips is None else at + timedelta(minutes=5),
    }
    fields.update(over)
    return ShadowSignal(**fields)


@pytest.fixture(name="make_trade", scope="session")
def fixture_make_trade() -> Callable[..., Trade]:
    """``make_trade(close_at=..., pl_pips=..., **overrides)``."""
    return _trade


@pytest.fixture(name="make_signal", scope="session")
def fixture_make_signal() -> Callable[..., ShadowSignal]:
    """``make_signal(at=..., outcome_pips=..., **overrides)``."""
    return _signal
