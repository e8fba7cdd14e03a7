"""Exit rules, fills and money checked by hand on real EUR/USD H1 bars (backtesting.py's file).

Bar ``k`` is line ``k + 2`` of tests/data/fx/backtesting-py/EURUSD.csv; every expected number
below is worked out from the OHLC values quoted next to it, not taken from the engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from autolearn.backtest import Candles, Cost, ExitReason, load_candles, run_grid, run_one
from autolearn.errors import ConfigError

DATA = Path(__file__).parent.parent / "data" / "fx" / "backtesting-py" / "EURUSD.csv"


@dataclass(frozen=True, slots=True, kw_only=True)
class FixedSignals:
    """Test strategy: knob ``case`` picks a row of pre-set signals (bar index -> side)."""

    cases: tuple[Mapping[int, int], ...]
    name: str = "fixed"
    defaults: Mapping[str, float] = field(default_factory=lambda: {"case": 0.0})

    def check(self, params: Mapping[str, float]) -> list[str]:
        return []

    def signals(
        self, candles: Candles, param_sets: Sequence[Mapping[str, float]]
    ) -> NDArray[np.int8]:
        out = np.zeros((len(param_sets), len(candles)), dtype=np.int8)
        for k, p in enumerate(param_sets):
            for bar, side in self.cases[int(p["case"])].items():
                out[k, bar] = side
        return out


@pytest.fixture(name="bars", scope="module")
def fixture_bars() -> Candles:
    """The real H1 bars."""
    return load_candles(DATA)


def _one(bars: Candles, signals: Mapping[int, int], cost: Cost | None = None, **knobs: float):
    result = run_one(bars, FixedSignals(cases=(signals,)), {"case": 0, **knobs}, cost)
    assert len(result.trades) >= 1
    return result.trades


def test_sl_hit_in_the_entry_bar(bars: Candles) -> None:
    """Long at bar 4's open 1.07200 with SL 10 pips: bar 4's low 1.07045 takes it at 1.07100."""
    t = _one(bars, {3: 1}, sl_pips=10, tp_pips=50)
    assert (t.entry_bar[0], t.exit_bar[0], t.reasons()[0]) == (4, 4, ExitReason.SL)
    assert t.entry_price[0] == pytest.approx(1.07200, abs=1e-12)
    assert t.exit_price[0] == pytest.approx(1.07100, abs=1e-12)
    assert t.pips[0] == pytest.approx(-10.0, abs=1e-9)


def test_tp_hit(bars: Candles) -> None:
    """Long at bar 21's open 1.07262, TP 20 pips = 1.07462 < high 1.07476; low 1.0721 > SL."""
    t = _one(bars, {20: 1}, sl_pips=10, tp_pips=20)
    assert (t.exit_bar[0], t.reasons()[0]) == (21, ExitReason.TP)
    assert t.exit_price[0] == pytest.approx(1.07462, abs=1e-12)
    assert t.pips[0] == pytest.approx(20.0, abs=1e-9)


def test_sl_and_tp_in_one_bar_counts_as_sl(bars: Candles) -> None:
    """Bar 21 reaches both SL 5 pips (1.07212 >= low 1.0721) and TP 20 pips: SL wins."""
    t = _one(bars, {20: 1}, sl_pips=5, tp_pips=20)
    assert (t.exit_bar[0], t.reasons()[0]) == (21, ExitReason.SL)
    assert t.pips[0] == pytest.approx(-5.0, abs=1e-9)


def test_gap_through_sl_fills_at_the_open(bars: Candles) -> None:
    """Short Friday 20:00 at 1.07029, SL 30 pips (1.07329); Sunday opens 1.0893: -190.1 pips."""
    t = _one(bars, {58: -1}, sl_pips=30, tp_pips=100)
    assert (t.entry_bar[0], t.exit_bar[0], t.reasons()[0]) == (59, 60, ExitReason.SL)
    assert t.exit_price[0] == pytest.approx(1.0893, abs=1e-12)
    assert t.pips[0] == pytest.approx(-190.1, abs=1e-9)


def test_timeout_exits_at_the_close_of_the_last_bar_held(bars: Candles) -> None:
    """Long at bar 1's open 1.07214 for 3 bars exits at bar 3's close 1.07202: -1.2 pips."""
    t = _one(bars, {0: 1}, timeout_bars=3)
    assert (t.entry_bar[0], t.exit_bar[0], t.reasons()[0]) == (1, 3, ExitReason.TIMEOUT)
    assert t.pips[0] == pytest.approx(-1.2, abs=1e-9)


def test_spread_is_paid_on_both_sides(bars: Candles) -> None:
    """With a 1-pip spread the same timeout trade fills at 1.07219 and exits at 1.07197."""
    t = _one(bars, {0: 1}, Cost(spread_pips=1.0), timeout_bars=3)
    assert t.entry_price[0] == pytest.approx(1.07219, abs=1e-12)
    assert t.exit_price[0] == pytest.approx(1.07197, abs=1e-12)
    assert t.pips[0] == pytest.approx(-2.2, abs=1e-9)


def test_opposite_signal_closes_and_reverses_at_the_next_open(bars: Candles) -> None:
    """Long at bar 1, short signal on bar 2: both fill at bar 3's open 1.07195."""
    t = _one(bars, {0: 1, 2: -1}, timeout_bars=3)
    assert t.reasons()[:2] == [ExitReason.SIGNAL, ExitReason.TIMEOUT]
    assert (t.exit_bar[0], t.entry_bar[1], t.side[1]) == (3, 3, -1)
    assert t.exit_price[0] == pytest.approx(1.07195, abs=1e-12)
    assert t.entry_price[1] == pytest.approx(1.07195, abs=1e-12)
    # the short times out after 3 bars: 1.07195 to bar 5's close 1.07128 = +6.7 pips
    assert t.exit_bar[1] == 5
    assert t.pips[1] == pytest.approx(6.7, abs=1e-9)


def test_same_side_signal_and_disabled_signal_exit_are_ignored(bars: Candles) -> None:
    """A second long signal and (with exit_on_signal 0) a short one leave the trade alone."""
    t = _one(bars, {0: 1, 1: 1, 2: -1}, timeout_bars=3, exit_on_signal=0)
    assert len(t) == 1
    assert t.reasons() == [ExitReason.TIMEOUT]


def test_open_position_closes_at_the_last_close(bars: Candles) -> None:
    """A long entered on the second-to-last bar (1.23426 open) ends at the last close 1.22904."""
    n = len(bars)
    t = _one(bars, {n - 3: 1})
    assert (t.entry_bar[0], t.exit_bar[0], t.reasons()[0]) == (n - 2, n - 1, ExitReason.END)
    assert t.pips[0] == pytest.approx((1.22904 - 1.23374) / 1e-4, abs=1e-9)


def test_account_pl_for_a_usd_base_pair_is_divided_by_the_exit_rate() -> None:
    """USD/JPY, 10,000 units, 120.00 -> 121.00 long: 10,000 JPY = 10,000/121 USD."""
    bars = Candles(
        instrument="USD_JPY",
        timeframe_s=60,
        time_us=np.array([0, 60_000_000, 120_000_000]),
        open=np.array([120.0, 120.0, 121.0]),
        high=np.array([120.0, 120.5, 121.0]),
        low=np.array([120.0, 119.9, 121.0]),
        close=np.array([120.0, 120.3, 121.0]),
        volume=np.zeros(3),
    )
    t = _one(bars, {0: 1})
    assert t.pips[0] == pytest.approx(100.0, abs=1e-9)
    assert t.pl_account[0] == pytest.approx(10_000 / 121.0, rel=1e-12)


def test_cross_pair_needs_an_explicit_rate(bars: Candles) -> None:
    """EUR/USD for a JPY account cannot be converted without quote_to_account."""
    with pytest.raises(ConfigError, match="quote_to_account"):
        _one(bars, {0: 1}, Cost(account_currency="JPY"), timeout_bars=3)
    t = _one(bars, {0: 1}, Cost(account_currency="JPY", quote_to_account=110.0), timeout_bars=3)
    assert t.pl_account[0] == pytest.approx(-0.00012 * 10_000 * 110.0, rel=1e-9)


def test_unknown_and_invalid_knobs_are_config_errors(bars: Candles) -> None:
    """Typos and impossible windows fail loudly, naming the knob set and the knob."""
    with pytest.raises(ConfigError, match=r"param_sets\[0\]: unknown knobs \['fsat'\]"):
        run_grid(bars, "sma_cross", [{"fsat": 5}])
    with pytest.raises(ConfigError, match="fast"):
        run_grid(bars, "sma_cross", {"fast": [30], "slow": [20]})
    with pytest.raises(ConfigError, match="unknown strategy"):
        run_grid(bars, "nope", [{}])


def test_grid_summary_matches_its_trades(bars: Candles) -> None:
    """Per-set n, net pips, win rate, PF and drawdown agree with a recount from the trade list."""
    grid = run_grid(
        bars,
        "sma_cross",
        {
            "fast": [5, 10],
            "slow": [20, 40],
            "sl_pips": [20],
            "tp_pips": [40],
            "timeout_bars": [0, 24],
        },
    )
    for k, summary in enumerate(grid.summaries):
        pips = grid.run(k).trades.pips
        cum = np.cumsum(pips)
        drawdown = np.max(np.maximum.accumulate(np.r_[0.0, cum]) - np.r_[0.0, cum])
        assert summary.n_trades == len(pips) > 0
        assert summary.net_pips == pytest.approx(pips.sum(), abs=1e-6)
        assert summary.win_rate == pytest.approx(np.mean(pips > 0))
        assert summary.profit_factor == pytest.approx(pips[pips > 0].sum() / -pips[pips <= 0].sum())
        assert summary.max_drawdown_pips == pytest.approx(drawdown, abs=1e-6)
        assert summary.net_account == pytest.approx(pips.sum(), abs=1e-4)  # $1/pip at 10k units
