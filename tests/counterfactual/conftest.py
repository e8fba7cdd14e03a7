"""Builders for the counterfactual tests: synthetic M1 candles on the real FX week."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest

from autolearn.backtest import Candles

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, 00:00 UTC
MIN_US = 60_000_000


def walk(
    n: int,
    *,
    seed: int = 0,
    start_us: int | None = None,
    step_us: int = MIN_US,
    vol_pips: float = 1.0,
    instrument: str = "EUR_USD",
    times: np.ndarray | None = None,
    spread: np.ndarray | None = None,
) -> Candles:
    """A random-walk Candles of ``n`` bars (every bar open = previous close)."""
    rng = np.random.default_rng(seed)
    pip = 0.01 if instrument.endswith("JPY") else 0.0001
    close = 1.1 + np.cumsum(rng.normal(0, vol_pips * pip, n))
    open_ = np.concatenate([[1.1], close[:-1]])
    wick = np.abs(rng.normal(0, vol_pips * pip, (2, n)))
    start = int(MONDAY.timestamp()) * 1_000_000 if start_us is None else start_us
    t = times if times is not None else start + step_us * np.arange(n, dtype=np.int64)
    return Candles(
        instrument=instrument,
        timeframe_s=step_us // 1_000_000,
        time_us=t,
        open=open_,
        high=np.maximum(open_, close) + wick[0],
        low=np.minimum(open_, close) - wick[1],
        close=close,
        volume=np.ones(n),
        spread_pips=spread,
    )


@pytest.fixture(name="make_candles")
def fixture_make_candles() -> Callable[..., Candles]:
    """The ``walk`` builder."""
    return walk
