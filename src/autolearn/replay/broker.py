"""The paper broker: bar-by-bar position management with the backtest engine's fill rules.

A per-bar Python twin of ``autolearn.backtest._kernel`` (tested against ``run_one`` on the same
signals), so the replay can interleave entries with the gates and the mechanisms' cycles:

* an entry decided at bar ``i - 1``'s close fills at bar ``i``'s open, ``mid + side * spread/2``;
  a reverse signal closes at that open (``signal``) before the new entry;
* SL / TP trigger on the closing side of the quote; an open already through a level (a gap)
  fills at that open; a bar touching both counts as SL (the path inside a bar is unknown);
* at the close: the strategy's timeout (``timeout``: ``i - entry_bar + 1 >= timeout_bars``), then
  the scalp low-vol controller (``hard_timeout``, ``hazard_exit``, ``scratch``, see
  ``strategies``); ``close_all`` ends the replay at the last close (``end``).

Exit reasons are the bot's own vocabulary (``Trade.exit_reason``); ``broker_close_reason`` is
OANDA's (``STOP_LOSS_ORDER``, ``TAKE_PROFIT_ORDER``, ``MARKET_ORDER_TRADE_CLOSE``), which the
scalp trainer reads. Times: exits at an open carry that bar's open time; exits inside a bar or
at its close carry the bar's close time (when the outcome is known).

State lives in this object (an imperative shell); it reads no clock and does no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from autolearn.backtest.candles import Candles
from autolearn.replay.strategies import Exits

__all__ = ["BROKER_REASON", "ExitCode", "Fill", "PaperBroker", "Position", "run_signals"]


class ExitCode(StrEnum):
    """Why the paper broker closed a position (persisted as ``Trade.exit_reason``)."""

    SL = "sl"
    TP = "tp"
    TIMEOUT = "timeout"
    SIGNAL = "signal"
    HARD_TIMEOUT = "hard_timeout"
    HAZARD_EXIT = "hazard_exit"
    SCRATCH = "scratch"
    END = "end"


BROKER_REASON: Mapping[ExitCode, str] = {
    ExitCode.SL: "STOP_LOSS_ORDER",
    ExitCode.TP: "TAKE_PROFIT_ORDER",
}


@dataclass(slots=True, kw_only=True)
class Position:
    """One open position (mutable bookkeeping of the low-vol controller's counters)."""

    key: str
    strategy: str
    side: int  # +1 long, -1 short
    units: int
    entry_bar: int
    entry_price: float
    sl_price: float  # 0.0 = off
    tp_price: float
    exits: Exits
    tags: dict[str, Any] = field(default_factory=dict)
    hazard_streak: int = 0
    stall: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill:
    """A closed position."""

    position: Position
    exit_bar: int
    exit_price: float
    exit_time_us: int
    reason: ExitCode


class PaperBroker:
    """Open positions of one instrument, managed bar by bar (see the module docstring)."""

    def __init__(self, candles: Candles, spread_pips: float) -> None:
        self.c = candles
        self.pip = candles.pip
        self.half = spread_pips * candles.pip / 2.0
        self.spread_pips = spread_pips
        self._open: dict[str, Position] = {}

    def __iter__(self) -> Iterator[Position]:
        return iter(list(self._open.values()))

    def __len__(self) -> int:
        return len(self._open)

    def get(self, key: str) -> Position | None:
        return self._open.get(key)

    def pips(self, fill: Fill) -> float:
        pos = fill.position
        return pos.side * (fill.exit_price - pos.entry_price) / self.pip

    def open(
        self, *, key: str, strategy: str, side: int, bar: int, units: int, exits: Exits, **tags: Any
    ) -> Position:
        """Fill an entry at the open of ``bar``."""
        entry = float(self.c.open[bar]) + side * self.half
        pos = Position(
            key=key,
            strategy=strategy,
            side=side,
            units=units,
            entry_bar=bar,
            entry_price=entry,
            sl_price=entry - side * exits.sl_pips * self.pip if exits.sl_pips > 0 else 0.0,
            tp_price=entry + side * exits.tp_pips * self.pip if exits.tp_pips > 0 else 0.0,
            exits=exits,
            tags=dict(tags),
        )
        self._open[key] = pos
        return pos

    def close_at_open(self, key: str, bar: int, reason: ExitCode = ExitCode.SIGNAL) -> Fill:
        """Close a position at the open of ``bar`` (a reverse signal)."""
        pos = self._open.pop(key)
        price = float(self.c.open[bar]) - pos.side * self.half
        return Fill(
            position=pos,
            exit_bar=bar,
            exit_price=price,
            exit_time_us=int(self.c.time_us[bar]),
            reason=reason,
        )

    def close_all(self, bar: int, reason: ExitCode = ExitCode.END) -> list[Fill]:
        """Close every position at the close of ``bar``."""
        end_us = int(self.c.time_us[bar]) + self.c.timeframe_s * 1_000_000
        fills = [
            Fill(
                position=pos,
                exit_bar=bar,
                exit_price=float(self.c.close[bar]) - pos.side * self.half,
                exit_time_us=end_us,
                reason=reason,
            )
            for pos in self._open.values()
        ]
        self._open.clear()
        return fills

    def step(self, bar: int) -> list[Fill]:
        """Resolve SL / TP inside ``bar`` and the exits at its close; return what closed."""
        fills = []
        for pos in list(self._open.values()):
            found = self._exit(pos, bar)
            if found is not None:
                price, reason, at_open = found
                del self._open[pos.key]
                at_us = int(self.c.time_us[bar])
                if not at_open:
                    at_us += self.c.timeframe_s * 1_000_000
                fills.append(
                    Fill(
                        position=pos,
                        exit_bar=bar,
                        exit_price=price,
                        exit_time_us=at_us,
                        reason=reason,
                    )
                )
        return fills

    def _exit(self, pos: Position, i: int) -> tuple[float, ExitCode, bool] | None:
        side, h, c = pos.side, self.half, self.c
        o = float(c.open[i]) - side * h  # the closing side of the quote
        adverse = float(c.low[i] if side > 0 else c.high[i]) - side * h
        favour = float(c.high[i] if side > 0 else c.low[i]) - side * h
        sl, tp = pos.sl_price, pos.tp_price
        if sl and side * (o - sl) <= 0.0:
            return o, ExitCode.SL, True  # gapped through (or spread >= SL)
        if tp and side * (o - tp) >= 0.0:
            return o, ExitCode.TP, True
        if sl and side * (adverse - sl) <= 0.0:
            return sl, ExitCode.SL, False  # SL before TP: conservative
        if tp and side * (favour - tp) >= 0.0:
            return tp, ExitCode.TP, False
        close = float(c.close[i]) - side * h
        held = i - pos.entry_bar + 1
        ex = pos.exits
        if ex.timeout_bars > 0 and held >= ex.timeout_bars:
            return close, ExitCode.TIMEOUT, False
        lv = ex.lowvol
        if lv is None:
            return None
        if held >= lv.timeout_bars:
            return close, ExitCode.HARD_TIMEOUT, False
        pl = side * (close - pos.entry_price) / self.pip
        pos.hazard_streak = pos.hazard_streak + 1 if pl <= -lv.hazard_pips else 0
        if pos.hazard_streak >= lv.hazard_debounce:
            return close, ExitCode.HAZARD_EXIT, False
        if held > lv.grace_bars and abs(pl) <= max(0.5, self.spread_pips):
            pos.stall += 1
            if pos.stall >= lv.scratch_events:
                return close, ExitCode.SCRATCH, False
        return None


def run_signals(
    candles: Candles, signals: NDArray[np.int8], exits: Exits, spread_pips: float
) -> list[Fill]:
    """One strategy's signals through the broker with the engine's one-position rules.

    The reference the replay loop follows (and the test twin of ``backtest.run_one``).
    """
    broker = PaperBroker(candles, spread_pips)
    fills: list[Fill] = []
    key = "p"
    n = len(candles)
    for i in range(n):
        sig = int(signals[i - 1]) if i > 0 else 0
        pos = broker.get(key)
        if pos is not None and sig == -pos.side and exits.exit_on_signal:
            fills.append(broker.close_at_open(key, i))
            pos = None
        if pos is None and sig != 0:
            broker.open(key=key, strategy="s", side=sig, bar=i, units=1, exits=exits)
        fills.extend(broker.step(i))
        if i == n - 1:
            fills.extend(broker.close_all(i))
    return fills
