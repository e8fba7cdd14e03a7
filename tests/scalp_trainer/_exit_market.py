"""A known-truth market for the scalp trainer's exit counterfactual: the best timeout is known.

After each M1Scalper entry the price drifts in the trade's direction for ``edge_bars`` bars and
against it for the next ``fade_bars`` (the edge of a scalp decays, then reverts), with per-bar
noise; stop and target are wide enough that the timeout decides. A timeout of ``edge_bars`` is
then the best, longer or shorter ones pay less. ``push_pips`` 0 is the null market. Entries do
not overlap (one position at a time), so the recorded P/L is the simulated one, as in a bot
whose exits the model describes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from autolearn.backtest.candles import Candles
from autolearn.core.model import EntrySignal, Side
from autolearn.counterfactual import signal_outcomes

START = datetime(2025, 10, 20, 0, 0, tzinfo=UTC)  # a Monday
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitMarket:
    candles: Candles
    signals: list[EntrySignal]
    recorded: dict[str, float]  # broker id -> pips at the live timeout


def _trading(t: datetime) -> bool:
    return not ((t.weekday() == 4 and t.hour >= 21) or t.weekday() >= 5)


def make_exit_market(
    seed: int,
    *,
    days: int = 30,
    trades_per_day: float = 12.0,
    edge_bars: int = 20,
    fade_bars: int = 15,
    push_pips: float = 0.25,
    bar_sd_pips: float = 1.2,
    live_timeout_s: float = 900.0,
    sl_pips: float = 40.0,
    tp_pips: float = 40.0,
) -> ExitMarket:
    rng = np.random.default_rng(seed)
    minutes = [START + timedelta(minutes=k) for k in range(days * 1440)]
    opens = [t for t in minutes if _trading(t)]
    n = len(opens)
    gap = int(1440 / trades_per_day)
    horizon = edge_bars + fade_bars + 2
    bars = []
    k = int(rng.integers(5, gap))
    while k + horizon < n - 60:
        bars.append(k)
        k += gap + int(rng.integers(-gap // 3, gap // 3 + 1))
    sig_bar = np.array(bars, dtype=np.int64)
    direction = rng.choice([-1.0, 1.0], size=sig_bar.size)
    drift = np.zeros(n + horizon + 2)
    np.add.at(drift, sig_bar + 1, direction * push_pips)
    np.add.at(drift, sig_bar + 1 + edge_bars, -2 * direction * push_pips)
    np.add.at(drift, sig_bar + 1 + edge_bars + fade_bars, direction * push_pips)
    per_bar = np.cumsum(drift)[:n]
    sub = 6
    steps = rng.normal(0.0, bar_sd_pips / np.sqrt(sub), (n, sub)) + (per_bar / sub)[:, None]
    pip = 0.01
    path = 150.0 + np.cumsum(steps.ravel()).reshape(n, sub) * pip
    close = path[:, -1]
    open_ = np.concatenate([[150.0], close[:-1]])
    candles = Candles(
        instrument="USD_JPY",
        timeframe_s=60,
        time_us=np.array([(t - _EPOCH) // timedelta(microseconds=1) for t in opens], np.int64),
        open=np.round(open_, 5),
        high=np.round(np.maximum(path.max(axis=1), open_), 5),
        low=np.round(np.minimum(path.min(axis=1), open_), 5),
        close=np.round(close, 5),
        volume=np.full(n, 10.0),
        source="knowntruth-exits",
        spread_pips=np.full(n, 0.2),
    )
    signals = [
        EntrySignal(
            signal_id=f"S{j}",
            at=opens[b] + timedelta(minutes=1),
            instrument="USD_JPY",
            pocket="scalp",
            strategy="M1Scalper",
            side=Side.LONG if direction[j] > 0 else Side.SHORT,
            price=float(candles.close[b]),
            sl_pips=sl_pips,
            tp_pips=tp_pips,
            timeout_s=live_timeout_s,
            taken=True,
            broker_trade_id=f"T{j}",
        )
        for j, b in enumerate(sig_bar)
    ]
    out = signal_outcomes(candles, signals, spread_pips=0.2)
    recorded = {s.broker_trade_id: float(p) for s, p in zip(signals, out.pips, strict=True)}
    return ExitMarket(candles=candles, signals=signals, recorded=recorded)
