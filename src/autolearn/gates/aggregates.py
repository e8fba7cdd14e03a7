"""Incremental aggregates of recent trades for the gates, fed from the ledger.

Two feeds, one state:

- ``ingest_committed`` (a ledger that is ``CommitOrdered``: every SQL ledger, schema v3): trades
  in commit order, resumed after the highest ``seq`` seen (``commit_seq``). A trade committed
  after a newer-closing one, a writer whose clock lags, a late backfill: each arrives once,
  whatever its close time (issue 19 item 1: resuming by close time missed 2.6-10 % of trades
  with several writers). Rows are de-duplicated by trade key, so an overlapping re-read counts
  nothing twice, and a later version of a trade (a higher ``seq``: an importer's correction)
  replaces the one counted.
- ``ingest`` (a single writer in close order: the replay's in-memory ledger): trades in ledger
  order ``(close_at, broker_trade_id, close_tx_id)``, anything at or before that watermark
  ignored. A restored or compacted database cannot hide trades nor count one twice (the
  original's row-id watermark stalled: original-system.md 3.6).

Per (pocket, strategy) the trades of the last ``history_window`` are kept in close order (one
arriving out of order is inserted in place); a lookback window is two binary searches on real
timestamps, and its ``WindowStats`` are computed once per distinct window and cached until a
trade enters or leaves it. The stage tracker is a fold in close order, so a pocket that receives
an older trade than it has folded is re-folded from its kept trades (as at start-up).

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
from autolearn.ledger._base import CommittedTrade, Watermark

__all__ = ["Aggregates", "watermark_of"]

_MARGIN = "MARKET_ORDER_MARGIN_CLOSEOUT"
_STOP = "STOP_LOSS_ORDER"

_Id = tuple[str, str]  # (broker_trade_id, close_tx_id): the trade key
_Order = tuple[int, str, str]  # (close_at_us, broker_trade_id, close_tx_id): the ledger order


def watermark_of(trade: Trade) -> Watermark:
    return (trade.close_at, trade.broker_trade_id, trade.close_tx_id)


def _order(t: Trade, close_us: int) -> _Order:
    return (close_us, t.broker_trade_id, t.close_tx_id)


@dataclass(slots=True)
class _Series:
    """Close times (epoch us, ascending) and trades of one (pocket, strategy)."""

    times: list[int] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    offset: int = 0  # how many were trimmed from the front, ever (absolute index = offset + i)
    generation: int = 0  # bumped when a trade is inserted before the end or removed


class Aggregates:
    """The gates' in-memory view of the ledger's recent trades."""

    def __init__(self, config: GatesConfig) -> None:
        self.config = config
        self.units: Units = config.units
        self.watermark: Watermark | None = None
        self._mark_us: _Order | None = None
        self.commit_seq = 0  # the highest ``seq`` read by ``ingest_committed``
        self.trades_seen = 0
        self.corrected = 0  # counted trades replaced by a later version (``ingest_committed``)
        self.future_skipped = 0  # rows offered from after ``not_after`` (see ``ingest``)
        self.series: dict[tuple[str, str], _Series] = {}
        self.stage = StageBook(config.stage, config.units)
        # (base strategy, side, instrument) -> its newest close: a re-entry's price distance
        # compares prices of one instrument only (issue 19 item 2: a USD_JPY entry was held
        # against a EUR_USD close)
        self.last_close: dict[tuple[str, Side, str], LastClose] = {}
        self._window_cache: dict[
            tuple[str, str, int | None], tuple[int, int, int, WindowStats]
        ] = {}
        self._cluster_cache: dict[str, tuple[int, int, int, tuple[int, int, float]]] = {}
        self._keep_us = int(config.history_window.total_seconds() * 1_000_000)
        self._held: dict[_Id, CommittedTrade] = {}  # future-dated rows, taken when due
        self._counted: dict[_Id, CommittedTrade] = {}  # the kept version of each kept trade
        self._folded: dict[str, _Order] = {}  # per pocket: the newest trade the stage folded
        self._last_key: dict[tuple[str, Side, str], _Order] = {}

    def latest_close(
        self, base: str, side: Side, instrument: str | None = None
    ) -> LastClose | None:
        """The newest close of ``base`` on ``side`` in ``instrument``; without an instrument
        (a bot that does not say), the newest in any instrument, as before v4."""
        if instrument is not None:
            return self.last_close.get((base, side, instrument))
        found = [k for k in self._last_key if k[0] == base and k[1] is side]
        if not found:
            return None
        return self.last_close.get(max(found, key=self._last_key.__getitem__))

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
        refold: set[str] = set()
        for t in trades:
            key = _order(t, to_epoch_us(t.close_at))
            if self._mark_us is not None and key <= self._mark_us:
                continue  # at or before the watermark: already counted
            if limit_us is not None and key[0] > limit_us:
                self.future_skipped += 1
                break  # ledger order: everything after it is later still
            self._add(t, key[0], refold)
            self._mark_us = key
            self.watermark = watermark_of(t)
            added += 1
        self._refold(refold)
        self.trades_seen += added
        return added

    def ingest_committed(
        self,
        rows: Iterable[CommittedTrade],
        *,
        not_after: datetime | None = None,
        not_before: datetime | None = None,
    ) -> int:
        """Take ``rows`` (commit order, possibly overlapping earlier reads); returns how many
        trades were new.

        A row whose key was already counted at the same or a higher ``seq`` is a re-read and
        skipped; at a higher ``seq`` it is a later version of that trade and replaces it
        (``corrected``), counted once. A row closing after ``not_after`` is held (counted in
        ``future_skipped`` at each offer) and taken once its time has come; a new one closing
        before ``not_before`` (older than the history window) is not kept.
        """
        limit_us = to_epoch_us(not_after) if not_after is not None else None
        floor_us = to_epoch_us(not_before) if not_before is not None else None
        held, self._held = list(self._held.values()), {}
        refold: set[str] = set()
        added = 0
        for row in [*held, *rows]:
            seq, t = row
            self.commit_seq = max(self.commit_seq, seq)
            ident = (t.broker_trade_id, t.close_tx_id)
            counted = self._counted.get(ident)
            waiting = self._held.get(ident)
            if (counted is not None and counted.seq >= seq) or (
                waiting is not None and waiting.seq >= seq
            ):
                continue  # read before (the overlap), or an older version
            close_us = to_epoch_us(t.close_at)
            if limit_us is not None and close_us > limit_us:
                self.future_skipped += 1
                self._held[ident] = row
                continue
            if counted is not None:
                self._counted[ident] = row
                if counted.trade != t:
                    self._remove(counted.trade, refold)
                    self._add(t, close_us, refold)
                    self.corrected += 1
                continue
            if floor_us is not None and close_us < floor_us:
                continue  # older than the history window: no gate looks at it
            self._counted[ident] = row
            self._add(t, close_us, refold)
            added += 1
        self._refold(refold)
        self.trades_seen += added
        return added

    def _add(self, t: Trade, close_us: int, refold: set[str]) -> None:
        s = self.series.setdefault((t.pocket, t.strategy), _Series())
        if not s.times or close_us >= s.times[-1]:
            s.times.append(close_us)
            s.trades.append(t)
        else:  # out of close order (a lagging clock, a backfill): in place
            at = bisect.bisect_right(s.times, close_us)
            s.times.insert(at, close_us)
            s.trades.insert(at, t)
            s.generation += 1
        horizon = s.times[-1] - self._keep_us
        if s.times[0] < horizon and len(s.times) > 64:
            cut = bisect.bisect_left(s.times, horizon)
            if cut > len(s.times) // 2:  # amortised: trim in bulk
                for old in s.trades[:cut]:
                    self._counted.pop((old.broker_trade_id, old.close_tx_id), None)
                del s.times[:cut], s.trades[:cut]
                s.offset += cut
        order = _order(t, close_us)
        folded = self._folded.get(t.pocket)
        if t.pocket in refold or (folded is not None and order < folded):
            refold.add(t.pocket)  # the fold is in close order: redo it after this batch
        else:
            self.stage.advance(t)
            self._folded[t.pocket] = order
        last = (base_strategy(t.strategy), t.side, t.instrument)
        known = self._last_key.get(last)
        if known is None or order >= known:
            self._last_key[last] = order
            self.last_close[last] = _last_close(t)

    def _remove(self, t: Trade, refold: set[str]) -> None:
        """Drop the kept version ``t`` of a trade (a later version replaces it)."""
        s = self.series.get((t.pocket, t.strategy))
        if s is None:
            return
        close_us = to_epoch_us(t.close_at)
        at = bisect.bisect_left(s.times, close_us)
        while at < len(s.times) and s.times[at] == close_us:
            if s.trades[at] is t:
                del s.times[at], s.trades[at]
                s.generation += 1
                refold.add(t.pocket)
                break
            at += 1
        last = (base_strategy(t.strategy), t.side, t.instrument)
        if self._last_key.get(last) == _order(t, close_us):
            self._last_key.pop(last)
            self.last_close.pop(last, None)
            newest = max(
                (
                    (_order(x, us), x)
                    for (_, strategy), kept in self.series.items()
                    if base_strategy(strategy) == last[0]
                    for us, x in zip(kept.times, kept.trades, strict=True)
                    if x.side is t.side and x.instrument == t.instrument
                ),
                default=None,
                key=lambda pair: pair[0],
            )
            if newest is not None:
                self._last_key[last] = newest[0]
                self.last_close[last] = _last_close(newest[1])

    def _refold(self, pockets: set[str]) -> None:
        """Rebuild the stage state of ``pockets`` from their kept trades, in close order."""
        for pocket in pockets:
            kept = sorted(
                (
                    (_order(t, us), t)
                    for (p, _), s in self.series.items()
                    if p == pocket
                    for us, t in zip(s.times, s.trades, strict=True)
                ),
                key=lambda pair: pair[0],
            )
            self.stage.reset_pocket(pocket)
            self._cluster_cache.pop(pocket, None)
            self._folded.pop(pocket, None)
            for order, t in kept:
                self.stage.advance(t)
                self._folded[pocket] = order

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
        if cached is not None and cached[:3] == (s.generation, s.offset + lo, s.offset + hi):
            return cached[3]
        chosen = s.trades[lo:hi]
        if hour is not None:
            chosen = [t for t in chosen if t.close_at.hour == hour]
        ws = WindowStats(
            stats=summarize(pnl(chosen, self.units)),
            margin_closeouts=sum(1 for t in chosen if t.broker_close_reason == _MARGIN),
            sl_losses=sum(1 for t in chosen if t.broker_close_reason == _STOP and t.pl_pips < 0),
        )
        self._window_cache[ckey] = (s.generation, s.offset + lo, s.offset + hi, ws)
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


def _last_close(t: Trade) -> LastClose:
    return LastClose(
        close_at=t.close_at,
        close_price=t.close_price,
        pl_pips=t.pl_pips,
        instrument=t.instrument,
    )
