"""Incremental aggregates of recent trades for the gates, fed in ledger order from the ledger.

Trades arrive in ledger order and the watermark is the ledger's own total order
``(close_at, broker_trade_id, close_tx_id)``: a restored or compacted database, or a REPLACE
that changes local row ids, can neither hide new trades nor count one twice (the original's
row-id watermark stalled: original-system.md 3.6). Anything at or before the watermark is
ignored.

Per (pocket, strategy) the trades of the last ``history_window`` are kept in close order; a
lookback window is two binary searches on real timestamps (never string compares), and its
``WindowStats`` are computed with the shared metrics module once per distinct window and
cached until a trade enters or leaves it: no table scan per entry check.

This module holds state in memory; it does no I/O and reads no clock.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from autolearn.core.metrics import Units, pnl, summarize
from autolearn.core.model import Side, Trade
from autolearn.core.timestamps import to_epoch_us
from autolearn.gates.config import GatesConfig
from autolearn.gates.perf_guard import WindowStats
from autolearn.gates.reentry import LastClose, base_strategy
from autolearn.gates.stage import StageBook, cluster_cooldown_until_us
from autolearn.ledger._base import Watermark

__all__ = ["Aggregates", "watermark_of"]

_MARGIN = "MARKET_ORDER_MARGIN_CLOSEOUT"
_STOP = "STOP_LOSS_ORDER"


def watermark_of(trade: Trade) -> Watermark:
    return (trade.close_at, trade.broker_trade_id, trade.close_tx_id)


def _key_us(w: Watermark) -> tuple[int, str, str]:
    return (to_epoch_us(w[0]), w[1], w[2])


@dataclass(slots=True)
class _Series:
    """Close times (epoch us, ascending) and trades of one (pocket, strategy)."""

    times: list[int] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    offset: int = 0  # how many were trimmed from the front, ever (absolute index = offset + i)


class Aggregates:
    """The gates' in-memory view of the ledger's recent trades."""

    def __init__(self, config: GatesConfig) -> None:
        self.config = config
        self.units: Units = config.units
        self.watermark: Watermark | None = None
        self._mark_us: tuple[int, str, str] | None = None
        self.trades_seen = 0
        self.future_skipped = 0  # rows offered from after ``not_after`` (see ``ingest``)
        self.series: dict[tuple[str, str], _Series] = {}
        self.stage = StageBook(config.stage, config.units)
        self.last_close: dict[tuple[str, Side], LastClose] = {}
        self._window_cache: dict[tuple[str, str, int | None], tuple[int, int, WindowStats]] = {}
        self._cluster_cache: dict[str, tuple[int, int, int, tuple[int, int, float]]] = {}
        self._keep_us = int(config.history_window.total_seconds() * 1_000_000)

    def ingest(self, trades: Iterable[Trade], *, not_after: datetime | None = None) -> int:
        """Advance over ``trades`` (ledger order); returns how many were new.

        A trade closing after ``not_after`` (the caller's now plus a tolerance) is not taken
        and the watermark stops before it: a row dated in the future (year 9999) must not move
        the watermark past every real trade that follows it. Being last in the ledger order,
        such rows are simply offered again at the next refresh (counted in ``future_skipped``)
        and taken once their time has come.
        """
        added = 0
        limit_us = to_epoch_us(not_after) if not_after is not None else None
        for t in trades:
            key = (to_epoch_us(t.close_at), t.broker_trade_id, t.close_tx_id)
            if self._mark_us is not None and key <= self._mark_us:
                continue  # at or before the watermark: already counted
            if limit_us is not None and key[0] > limit_us:
                self.future_skipped += 1
                break  # ledger order: everything after it is later still
            self._add(t, key[0])
            self._mark_us = key
            self.watermark = watermark_of(t)
            added += 1
        self.trades_seen += added
        return added

    def _add(self, t: Trade, close_us: int) -> None:
        s = self.series.setdefault((t.pocket, t.strategy), _Series())
        s.times.append(close_us)
        s.trades.append(t)
        horizon = close_us - self._keep_us
        if s.times[0] < horizon and len(s.times) > 64:
            cut = bisect.bisect_left(s.times, horizon)
            if cut > len(s.times) // 2:  # amortised: trim in bulk
                del s.times[:cut], s.trades[:cut]
                s.offset += cut
        self.stage.advance(t)
        self.last_close[(base_strategy(t.strategy), t.side)] = LastClose(
            close_at=t.close_at,
            close_price=t.close_price,
            pl_pips=t.pl_pips,
            instrument=t.instrument,
        )

    def window(
        self,
        pocket: str,
        strategy: str,
        lookback: timedelta,
        now: datetime,
        hour: int | None = None,
    ) -> WindowStats:
        """Stats of (pocket, strategy) trades with ``now - lookback <= close_at <= now``.

        ``hour``: only trades that closed in that UTC hour of day (the perf guard's slice).
        """
        s = self.series.get((pocket, strategy))
        if s is None:
            return WindowStats(stats=summarize([]))
        now_us = to_epoch_us(now)
        lo = bisect.bisect_left(s.times, now_us - int(lookback.total_seconds() * 1_000_000))
        hi = bisect.bisect_right(s.times, now_us)
        ckey = (pocket, strategy, hour)
        cached = self._window_cache.get(ckey)
        if cached is not None and cached[0] == s.offset + lo and cached[1] == s.offset + hi:
            return cached[2]
        chosen = s.trades[lo:hi]
        if hour is not None:
            chosen = [t for t in chosen if t.close_at.hour == hour]
        ws = WindowStats(
            stats=summarize(pnl(chosen, self.units)),
            margin_closeouts=sum(1 for t in chosen if t.broker_close_reason == _MARGIN),
            sl_losses=sum(1 for t in chosen if t.broker_close_reason == _STOP and t.pl_pips < 0),
        )
        self._window_cache[ckey] = (s.offset + lo, s.offset + hi, ws)
        return ws

    def cluster(self, pocket: str, now: datetime) -> tuple[int, int, float]:
        """(until_us, count, severity) of the pocket's loss cluster as seen at ``now``."""
        now_us = to_epoch_us(now)
        times, sizes = self.stage.cluster_window(pocket, now_us)
        if not times:
            return (0, 0, 0.0)
        ident = (times[0], times[-1], len(times))
        cached = self._cluster_cache.get(pocket)
        if cached is not None and cached[:3] == ident:
            return cached[3]
        result = cluster_cooldown_until_us(times, sizes, pocket, self.config.stage)
        self._cluster_cache[pocket] = (*ident, result)
        return result
