"""A write-through read cache over the replay's SQL ledger (the ``Ledger`` protocol).

Every write goes to the real ``SqlLedger`` first (the run's ``ledger.db`` is the artifact); reads
are answered from memory with the SQL ledger's exact semantics (``closed_since <= close_at <
closed_until``, order ``(close_at, broker_trade_id, close_tx_id)``; shadow signals by
``(at, signal_id)``). Why: the mechanisms run thousands of cycles per simulated month and each
reads its window; decoding the same rows from SQLite every cycle would dominate the replay. The
cache is exact because the replay is the ledger's only writer (a test compares every read
with the SQL ledger's).

An adapter: no decisions, no clock.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from datetime import datetime

from autolearn.core.model import ShadowSignal, Trade
from autolearn.core.timestamps import to_epoch_us
from autolearn.ledger._base import UpsertCounts, Watermark
from autolearn.ledger.sql import SqlLedger

__all__ = ["CachedLedger"]

_Key = tuple[int, str, str]


def _key(t: Trade) -> _Key:
    return (to_epoch_us(t.close_at), t.broker_trade_id, t.close_tx_id)


class CachedLedger:
    """``Ledger`` over ``inner`` with reads from memory (the replay is the only writer)."""

    def __init__(self, inner: SqlLedger) -> None:
        self.inner = inner
        self._keys: list[_Key] = []
        self._trades: list[Trade] = []
        self._by_id: dict[tuple[str, str], _Key] = {}
        self._sig_keys: list[tuple[int, str]] = []
        self._signals: list[ShadowSignal] = []
        self._sig_by_id: dict[str, tuple[int, str]] = {}
        for trade in inner.trades():
            self._insert(trade)
        for signal in inner.shadow_signals():
            self._insert_signal(signal)

    # -- writes (through) --------------------------------------------------------------------
    def upsert_trades(self, trades: Iterable[Trade]) -> UpsertCounts:
        batch = list(trades)
        counts = self.inner.upsert_trades(batch)
        for trade in batch:
            self._insert(trade)
        return counts

    def upsert_shadow_signals(self, signals: Iterable[ShadowSignal]) -> UpsertCounts:
        batch = list(signals)
        counts = self.inner.upsert_shadow_signals(batch)
        for signal in batch:
            self._insert_signal(signal)
        return counts

    def _insert_signal(self, signal: ShadowSignal) -> None:
        old = self._sig_by_id.get(signal.signal_id)
        if old is not None:
            at = bisect.bisect_left(self._sig_keys, old)
            del self._sig_keys[at], self._signals[at]
        key = (to_epoch_us(signal.at), signal.signal_id)
        at = bisect.bisect_left(self._sig_keys, key)
        self._sig_keys.insert(at, key)
        self._signals.insert(at, signal)
        self._sig_by_id[signal.signal_id] = key

    def _insert(self, trade: Trade) -> None:
        ident = (trade.broker_trade_id, trade.close_tx_id)
        old = self._by_id.get(ident)
        if old is not None:
            at = bisect.bisect_left(self._keys, old)
            del self._keys[at], self._trades[at]
        key = _key(trade)
        at = bisect.bisect_left(self._keys, key)
        self._keys.insert(at, key)
        self._trades.insert(at, trade)
        self._by_id[ident] = key

    # -- reads (memory) ----------------------------------------------------------------------
    def trades(
        self,
        *,
        closed_since: datetime | None = None,
        closed_until: datetime | None = None,
        pocket: str | None = None,
        strategy: str | None = None,
        instrument: str | None = None,
    ) -> list[Trade]:
        lo = (
            0
            if closed_since is None
            else bisect.bisect_left(self._keys, (to_epoch_us(closed_since), "", ""))
        )
        hi = len(self._keys)
        if closed_until is not None:
            hi = bisect.bisect_left(self._keys, (to_epoch_us(closed_until), "", ""))
        return [
            t
            for t in self._trades[lo:hi]
            if (pocket is None or t.pocket == pocket)
            and (strategy is None or t.strategy == strategy)
            and (instrument is None or t.instrument == instrument)
        ]

    def trades_after(self, watermark: Watermark | None, limit: int | None = None) -> list[Trade]:
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0 or None, got {limit}")
        lo = 0
        if watermark is not None:
            at, trade_id, tx_id = watermark
            lo = bisect.bisect_right(self._keys, (to_epoch_us(at), trade_id, tx_id))
        out = self._trades[lo:]
        return out if limit is None else out[:limit]

    def shadow_signals(
        self,
        *,
        since: datetime | None = None,
        pocket: str | None = None,
        strategy: str | None = None,
    ) -> list[ShadowSignal]:
        lo = 0 if since is None else bisect.bisect_left(self._sig_keys, (to_epoch_us(since), ""))
        return [
            s
            for s in self._signals[lo:]
            if (pocket is None or s.pocket == pocket)
            and (strategy is None or s.strategy == strategy)
        ]

    def count_trades(self) -> int:
        return len(self._trades)

    def last_close_at(self) -> datetime | None:
        return max((t.close_at for t in self._trades[-1:]), default=None)

    def get_cursor(self, name: str) -> str | None:
        return self.inner.get_cursor(name)

    def set_cursor(self, name: str, value: str) -> None:
        self.inner.set_cursor(name, value)

    def close(self) -> None:
        self.inner.close()
