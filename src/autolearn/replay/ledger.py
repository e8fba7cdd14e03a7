"""A write-through read cache over the replay's SQL ledger (the ``Ledger`` protocol).

Every write goes to the real ``SqlLedger`` first (the run's ``ledger.db`` is the artifact); reads
are answered from memory with the SQL ledger's exact semantics (``closed_since <= close_at <
closed_until``, order ``(close_at, broker_trade_id, close_tx_id)``; shadow signals and the
signal log by ``(at, signal_id)``; candles by open time). Why: the mechanisms run thousands of
cycles per simulated month and each reads its window; decoding the same rows from SQLite every
cycle would dominate the replay. The cache is exact because the replay is the ledger's only
writer (a test compares every read with the SQL ledger's). The signal log and the candles are
written behind, in large batches (:meth:`flush`, and on :meth:`close`): written a few bars or
signals at a time they cost a transaction each, and only this cache reads them during the run.

An adapter: no decisions, no clock.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from autolearn.core.model import EntrySignal, ShadowSignal, Trade
from autolearn.core.timestamps import to_epoch_us
from autolearn.ledger._base import UpsertCounts, Watermark
from autolearn.ledger.sql import SqlLedger

if TYPE_CHECKING:
    from autolearn.backtest.candles import Candles

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
        self._log_keys: list[tuple[int, str]] = []
        self._log: list[EntrySignal] = []
        self._log_by_id: dict[str, tuple[int, str]] = {}
        for trade in inner.trades():
            self._insert(trade)
        for signal in inner.shadow_signals():
            self._insert_signal(signal)
        for entry in inner.signals():
            self._insert_entry(entry)
        # (instrument, granularity) -> every stored bar, read from SQL once; the replay appends
        # newer bars, joined on the next read (one concatenation per read, not per write)
        self._candles: dict[tuple[str, str], Candles] = {}
        self._pending: dict[tuple[str, str], list[Candles]] = {}
        self._behind_signals: list[EntrySignal] = []
        self._behind_candles: list[tuple[Candles, str]] = []
        self._behind_rows = 0

    # -- writes (through) --------------------------------------------------------------------
    def upsert_trades(self, trades: Iterable[Trade]) -> UpsertCounts:
        batch = list(trades)
        counts = self.inner.upsert_trades(batch)
        for trade in batch:
            self._insert(trade)
        return counts

    def upsert_shadow_signals(self, signals: Iterable[ShadowSignal]) -> UpsertCounts:
        batch = list(signals)
        # No flush first: SQL logs a shadow under an id it does not hold yet, and the signal
        # written behind later replaces it, exactly as this cache ends up (a test compares).
        counts = self.inner.upsert_shadow_signals(batch)
        for signal in batch:
            self._insert_signal(signal)
            if signal.signal_id not in self._log_by_id:
                # the SQL ledger logs a shadow signal once, when the log has no such id yet
                self._insert_entry(_logged_shadow(signal))
        return counts

    def upsert_signals(self, signals: Iterable[EntrySignal]) -> UpsertCounts:
        """Held in memory and written behind (:meth:`flush`); the counts are of the cache."""
        batch = list(signals)
        inserted = updated = 0
        for entry in batch:
            if entry.signal_id in self._log_by_id:
                updated += 1
            else:
                inserted += 1
            self._insert_entry(entry)
        self._behind_signals.extend(batch)
        self._written_behind(len(batch))
        return UpsertCounts(inserted, updated, 0)

    def flush(self) -> None:
        """Write what is held behind to the SQL ledger (in the order it was given)."""
        if self._behind_candles:
            for candles, granularity in self._behind_candles:
                self.inner.upsert_candles(candles, granularity=granularity)
            self._behind_candles = []
        if self._behind_signals:
            self.inner.upsert_signals(self._behind_signals)
            self._behind_signals = []
        self._behind_rows = 0

    def _written_behind(self, rows: int) -> None:
        self._behind_rows += rows
        if self._behind_rows >= _BEHIND_ROWS:
            self.flush()

    def _insert_entry(self, entry: EntrySignal) -> None:
        old = self._log_by_id.get(entry.signal_id)
        key = (to_epoch_us(entry.at), entry.signal_id)
        if old is not None:
            at = bisect.bisect_left(self._log_keys, old)
            del self._log_keys[at], self._log[at]
        if not self._log_keys or key > self._log_keys[-1]:  # the usual case: in time order
            self._log_keys.append(key)
            self._log.append(entry)
        else:
            at = bisect.bisect_left(self._log_keys, key)
            self._log_keys.insert(at, key)
            self._log.insert(at, entry)
        self._log_by_id[entry.signal_id] = key

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

    def signals(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        instrument: str | None = None,
        pocket: str | None = None,
        strategy: str | None = None,
    ) -> list[EntrySignal]:
        keys = self._log_keys
        lo = 0 if since is None else bisect.bisect_left(keys, (to_epoch_us(since), ""))
        hi = len(keys) if until is None else bisect.bisect_left(keys, (to_epoch_us(until), ""))
        return [
            s
            for s in self._log[lo:hi]
            if (instrument is None or s.instrument == instrument)
            and (pocket is None or s.pocket == pocket)
            and (strategy is None or s.strategy == strategy)
        ]

    def upsert_candles(self, candles: Candles, *, granularity: str = "M1") -> UpsertCounts:
        """Newer bars are held in memory and written behind (:meth:`flush`); others at once."""
        key = (candles.instrument, granularity)
        held = self._candles.get(key)
        pending = self._pending.get(key, [])
        last = pending[-1] if pending else held
        if (
            last is not None
            and len(candles)
            and (not len(last) or int(candles.time_us[0]) > int(last.time_us[-1]))
        ):
            self._pending.setdefault(key, []).append(candles)
            self._behind_candles.append((candles, granularity))
            self._written_behind(len(candles))
            return UpsertCounts(len(candles), 0, 0)
        self.flush()  # not yet read, or an overlap: straight to SQL, read back on the next read
        counts = self.inner.upsert_candles(candles, granularity=granularity)
        self._candles.pop(key, None)
        self._pending.pop(key, None)
        return counts

    def candles(
        self,
        instrument: str,
        *,
        granularity: str = "M1",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Candles:
        key = (instrument, granularity)
        held = self._candles.get(key)
        if held is None:
            held = self._candles[key] = self.inner.candles(instrument, granularity=granularity)
        pending = self._pending.pop(key, None)
        if pending:
            held = self._candles[key] = _appended(held, pending)
        lo = 0 if since is None else int(np.searchsorted(held.time_us, to_epoch_us(since)))
        hi = len(held)
        if until is not None:
            hi = int(np.searchsorted(held.time_us, to_epoch_us(until)))
        if lo == 0 and hi == len(held):
            return held
        return _sliced(held, lo, hi)

    def count_trades(self) -> int:
        return len(self._trades)

    def last_close_at(self) -> datetime | None:
        return max((t.close_at for t in self._trades[-1:]), default=None)

    def get_cursor(self, name: str) -> str | None:
        return self.inner.get_cursor(name)

    def set_cursor(self, name: str, value: str) -> None:
        self.inner.set_cursor(name, value)

    def close(self) -> None:
        self.flush()
        self.inner.close()


_BEHIND_ROWS = 50_000  # rows held before a flush: a few large transactions per replayed month
_ARRAYS = ("time_us", "open", "high", "low", "close", "volume")


def _appended(held: Candles, newer: list[Candles]) -> Candles:
    """``held`` followed by ``newer`` (each newer than the last), as SQL would return them."""
    parts = [c for c in (held, *newer) if len(c)]
    if not parts:
        return held
    spreads = [c.spread_pips for c in parts]
    spread: NDArray[np.float64] | None = None
    if all(x is not None for x in spreads):
        spread = np.concatenate(spreads)  # type: ignore[arg-type]
    arrays = {n: np.concatenate([getattr(c, n) for c in parts]) for n in _ARRAYS}
    base = parts[0]
    return replace(base, **arrays, spread_pips=spread)  # type: ignore[arg-type]


def _sliced(held: Candles, lo: int, hi: int) -> Candles:
    # no bars read back without a spread, as from SQL
    spread = None if held.spread_pips is None or hi <= lo else held.spread_pips[lo:hi]
    arrays = {n: getattr(held, n)[lo:hi] for n in _ARRAYS}
    return replace(held, **arrays, spread_pips=spread)


def _logged_shadow(s: ShadowSignal) -> EntrySignal:
    """The signal-log entry of a shadow signal, as ``ledger._rows.shadow_signal_row`` maps it."""
    return EntrySignal(
        signal_id=s.signal_id,
        at=s.at,
        instrument=s.instrument,
        pocket=s.pocket,
        strategy=s.strategy,
        side=s.side,
        price=s.price,
        sl_pips=s.sl_pips,
        tp_pips=s.tp_pips,
        timeout_s=None,
        scores={},
        taken=False,
        not_taken=s.reason or "shadow",
        config_version=s.config_version,
        extra=dict(s.extra),
    )
