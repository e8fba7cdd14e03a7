"""Cross-check: our engine and backtesting.py 0.6.6 produce the same trade list.

Both run SMA crossover, stop-and-reverse, SL/TP fixed at entry, no spread or fees, next-bar-open
fills, on the 5,000 real EUR/USD H1 bars that ship with backtesting.py and on 1,500 real HistData
EUR/USD M1 bars. The peer is
configured to our semantics: ``trade_on_close=False``, ``exclusive_orders=True``, SL/TP priced
from the fill (the next open, which the peer strategy reads from the full frame), a reversing
signal cancels the old trade's SL/TP so it closes at the open, as ours does, and a signal on the
side already held is ignored. The one rule we do not mirror: the peer's last trade stays open
(``finalize_trades=True`` would close it at the last bar's *open*), ours closes it at the last
close as ``END``, so it is compared on its entry only.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest
from backtesting import Strategy as BtStrategy
from backtesting.lib import crossover

from autolearn.backtest import Candles, ExitReason, load_candles, run_one

FX = Path(__file__).parent.parent / "data" / "fx"
H1 = FX / "backtesting-py" / "EURUSD.csv"
M1 = FX / "histdata-paskl-fxot" / "DAT_ASCII_EURUSD_M1_201807.part-0001-1500.csv"
UNITS = 10_000
PIP = 0.0001


def _peer_trades(
    candles: Candles, fast: int, slow: int, sl_pips: float, tp_pips: float
) -> tuple[pd.DataFrame, list[int]]:
    """Run backtesting.py; return its closed trades and the entry bars of trades left open."""
    df = pd.DataFrame(
        {
            "Open": candles.open,
            "High": candles.high,
            "Low": candles.low,
            "Close": candles.close,
            "Volume": candles.volume,
        },
        index=pd.to_datetime(candles.time_us, unit="us"),
    )
    opens = df["Open"].to_numpy()
    sl_dist, tp_dist = sl_pips * PIP, tp_pips * PIP

    class Peer(BtStrategy):
        def init(self) -> None:
            close = pd.Series(self.data.Close)
            # Rounded to 1e-12: pandas' running sums leave last-bit noise that turns exact ties
            # of decimal prices into pseudo-crosses (ours detects ties at 1e-12 relative).
            self.fast = self.I(lambda: close.rolling(fast).mean().round(12).to_numpy())
            self.slow = self.I(lambda: close.rolling(slow).mean().round(12).to_numpy())

        def next(self) -> None:
            i = len(self.data) - 1
            if i + 1 >= len(opens):
                return  # a signal on the last bar can never fill (ours ignores it too)
            fill = opens[i + 1]
            # One position at a time, as ours: after a tie hides a cross, two crosses in a row
            # point the same way, and the peer would otherwise close and reopen the trade.
            if crossover(self.fast, self.slow) and not self.position.is_long:
                self._reverse()
                self.buy(size=UNITS, sl=fill - sl_dist, tp=fill + tp_dist)
            elif crossover(self.slow, self.fast) and not self.position.is_short:
                self._reverse()
                self.sell(size=UNITS, sl=fill + sl_dist, tp=fill - tp_dist)

        def _reverse(self) -> None:
            for trade in self.trades:  # close at the open, not at a level touched later
                trade.sl = None
                trade.tp = None

    bt = Backtest(
        df,
        Peer,
        cash=1e9,
        spread=0.0,
        commission=0.0,
        margin=1.0,
        trade_on_close=False,
        exclusive_orders=True,
        finalize_trades=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Some trades remain open" is expected here
        stats = bt.run()
    still_open = [trade.entry_bar for trade in stats._strategy.trades]
    return stats._trades.sort_values("EntryBar").reset_index(drop=True), still_open


@pytest.mark.parametrize(
    ("path", "fast", "slow", "sl_pips", "tp_pips"),
    [(H1, 10, 20, 30.0, 60.0), (H1, 10, 20, 15.0, 20.0), (M1, 5, 60, 10.0, 15.0)],
)
def test_trade_list_matches_backtesting_py(
    path: Path, fast: int, slow: int, sl_pips: float, tp_pips: float
) -> None:
    """Every closed peer trade matches ours in bars, times, prices (1e-9) and P/L."""
    candles = load_candles(path)
    peer, still_open = _peer_trades(candles, fast, slow, sl_pips, tp_pips)
    knobs = {"fast": fast, "slow": slow, "sl_pips": sl_pips, "tp_pips": tp_pips}
    ours = run_one(candles, "sma_cross", knobs).trades
    reasons = ours.reasons()
    # The peer leaves the last trade open (finalize_trades=False); ours closes it as END.
    closed = np.array([r is not ExitReason.END for r in reasons])
    assert ours.entry_bar[~closed].tolist() == still_open
    assert len(peer) == int(closed.sum()) > 20
    assert {ExitReason.SL, ExitReason.TP, ExitReason.SIGNAL} <= set(reasons)
    np.testing.assert_array_equal(ours.entry_bar[closed], peer["EntryBar"].to_numpy())
    np.testing.assert_array_equal(ours.exit_bar[closed], peer["ExitBar"].to_numpy())
    peer_entry_us = peer["EntryTime"].to_numpy().astype("datetime64[us]").astype(np.int64)
    peer_exit_us = peer["ExitTime"].to_numpy().astype("datetime64[us]").astype(np.int64)
    np.testing.assert_array_equal(ours.entry_time_us[closed], peer_entry_us)
    np.testing.assert_array_equal(ours.exit_time_us[closed], peer_exit_us)
    np.testing.assert_array_equal(ours.side[closed], np.sign(peer["Size"].to_numpy()))
    np.testing.assert_allclose(ours.entry_price[closed], peer["EntryPrice"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.exit_price[closed], peer["ExitPrice"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.pl_account[closed], peer["PnL"], rtol=0, atol=1e-6)
