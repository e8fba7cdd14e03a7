"""Reference strategies: registry, causality (no look-ahead), and hand-checked indicator values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.backtest import STRATEGIES, Candles, get_strategy, load_candles, run_grid
from autolearn.backtest.strategies._indicators import prev_max, rolling_mean, rsi
from autolearn.backtest.strategies.bb_rsi import block_reentry
from autolearn.backtest.strategies.sma_cross import cross_signals
from autolearn.errors import ConfigError

M1 = Path(__file__).parent.parent / "data" / "fx" / "histdata-paskl-fxot"
M1 = M1 / "DAT_ASCII_EURUSD_M1_201807.part-0001-1500.csv"

KNOBS = {
    "sma_cross": {"fast": 5, "slow": 30},
    "bb_rsi": {
        "bb_window": 20,
        "bb_k": 1.5,
        "rsi_window": 7,
        "rsi_low": 35,
        "rsi_high": 65,
        "reentry_block_s": 300,
    },
    "momentum_breakout": {
        "lookback": 10,
        "min_confidence": 0.5,
        "accel_window": 60,
        "accel_pctile": 70,
    },
}


@pytest.fixture(name="bars", scope="module")
def fixture_bars() -> Candles:
    """1,500 real EUR/USD M1 bars."""
    return load_candles(M1)


def _prefix(c: Candles, n: int) -> Candles:
    return Candles(
        instrument=c.instrument,
        timeframe_s=c.timeframe_s,
        time_us=c.time_us[:n],
        open=c.open[:n],
        high=c.high[:n],
        low=c.low[:n],
        close=c.close[:n],
        volume=c.volume[:n],
    )


def test_registry_names_the_original_knobs() -> None:
    """The mean-revert and breakout strategies carry the original bot's knob names."""
    assert set(STRATEGIES) == {"sma_cross", "bb_rsi", "momentum_breakout"}
    assert "reentry_block_s" in get_strategy("bb_rsi").defaults
    assert {"min_confidence", "accel_pctile"} <= set(get_strategy("momentum_breakout").defaults)


@pytest.mark.parametrize("name", sorted(KNOBS))
def test_every_strategy_fires_both_ways_on_real_bars(bars: Candles, name: str) -> None:
    """Each reference strategy produces long and short signals and trades on real data."""
    signals = get_strategy(name).signals(bars, [{**get_strategy(name).defaults, **KNOBS[name]}])
    assert {-1, 1} <= set(np.unique(signals).tolist())
    assert run_grid(bars, name, [KNOBS[name]]).summaries[0].n_trades > 0


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(KNOBS)), cut=st.integers(50, 1499))
def test_signals_never_look_ahead(bars: Candles, name: str, cut: int) -> None:
    """Signals on the first ``cut`` bars equal the first ``cut`` signals on all bars."""
    strat = get_strategy(name)
    params = [{**strat.defaults, **KNOBS[name]}]
    full = strat.signals(bars, params)[0]
    assert np.array_equal(strat.signals(_prefix(bars, cut), params)[0], full[:cut])


def test_indicators_by_hand() -> None:
    """SMA, the previous-bars max and Cutler's RSI on a five-value series."""
    x = np.array([1.0, 2.0, 4.0, 3.0, 5.0])
    np.testing.assert_allclose(rolling_mean(x, 2), [np.nan, 1.5, 3.0, 3.5, 4.0])
    np.testing.assert_allclose(prev_max(x, 2), [np.nan, np.nan, 2.0, 4.0, 4.0])
    # changes +1, +2, -1, +2; window 2: gains/total = 3/3, 2/3, 2/3 -> 100, 66.7, 66.7
    np.testing.assert_allclose(rsi(x, 2), [np.nan, np.nan, 100.0, 200 / 3, 200 / 3])


def test_cross_ignores_ties_and_rounding_noise() -> None:
    """A pass through an exact tie (up to 1e-12 relative) is not a cross; a clean one is."""
    slow = np.full(5, 1.1)
    fast = np.array([1.0, 1.1 + 4e-16, 1.2, 1.0, 1.2])
    assert cross_signals(fast, slow).tolist() == [0, 0, 0, -1, 1]


def test_reentry_block_drops_signals_inside_the_window() -> None:
    """With a 120 s block on M1 bars, signals 1 and 2 minutes after a kept one are dropped."""
    signals = np.array([1, 1, -1, 1, 0, -1], dtype=np.int8)
    block_reentry(signals, np.arange(6) * 60_000_000, 120.0)
    assert signals.tolist() == [1, 0, -1, 0, 0, -1]


def test_invalid_knobs_list_every_problem(bars: Candles) -> None:
    """Out-of-range knobs are collected into one ConfigError."""
    with pytest.raises(ConfigError) as info:
        run_grid(bars, "bb_rsi", [{"bb_window": 1.5, "rsi_low": 80, "rsi_high": 120}])
    assert any("bb_window" in p for p in info.value.problems)
    assert any("rsi_high" in p for p in info.value.problems)
