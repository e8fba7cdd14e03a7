"""The trade ledger seam: what every mechanism reads and every importer writes.

Contract (every implementation, SQLite or PostgreSQL, passes the same suite):
- ``upsert_*`` are idempotent: the same trade delivered twice is stored once, keyed by
  ``(broker_trade_id, close_tx_id)`` for trades and ``signal_id`` for shadow and entry signals;
  a re-delivery with changed fields updates the row (counted as ``updated``). A shadow signal
  also enters the signal log (not taken) when that has no row of its id.
- Reads return frozen values ordered by ``(close_at, broker_trade_id, close_tx_id)`` and filter
  on real timestamps (stored as integer microseconds), never on strings.
- A failure of the database is raised as ``LedgerError`` with the URL's password redacted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from autolearn.core.model import EntrySignal, ShadowSignal, Trade

if TYPE_CHECKING:  # numpy is the learn extra: a bare worker imports this module without it
    from autolearn.backtest.candles import Candles

__all__ = ["Ledger", "UpsertCounts", "Watermark"]

# (close_at, broker_trade_id, close_tx_id): a total order on trades that survives restores,
# REPLACE re-inserts and compaction (a local row id does not: original-system.md 3.6).
Watermark = tuple[datetime, str, str]


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    """How an upsert batch landed."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: UpsertCounts) -> UpsertCounts:
        return UpsertCounts(
            self.inserted + other.inserted,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
        )


class Ledger(Protocol):
    """Closed trades, shadow signals, the signal log, candles, and cursors for resumable imports."""

    def upsert_trades(self, trades: Iterable[Trade]) -> UpsertCounts: ...

    def upsert_shadow_signals(self, signals: Iterable[ShadowSignal]) -> UpsertCounts: ...

    def upsert_signals(self, signals: Iterable[EntrySignal]) -> UpsertCounts: ...

    def trades(
        self,
        *,
        closed_since: datetime | None = None,
        closed_until: datetime | None = None,
        pocket: str | None = None,
        strategy: str | None = None,
        instrument: str | None = None,
    ) -> list[Trade]:
        """Trades with ``closed_since <= close_at < closed_until`` matching every given filter."""
        ...

    def trades_after(self, watermark: Watermark | None, limit: int | None = None) -> list[Trade]:
        """Trades strictly after ``watermark`` in the ledger order (incremental readers)."""
        ...

    def shadow_signals(
        self,
        *,
        since: datetime | None = None,
        pocket: str | None = None,
        strategy: str | None = None,
    ) -> list[ShadowSignal]: ...

    def signals(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        instrument: str | None = None,
        pocket: str | None = None,
        strategy: str | None = None,
    ) -> list[EntrySignal]:
        """The signal log with ``since <= at < until`` and every filter, by ``(at, signal_id)``."""
        ...

    def upsert_candles(self, candles: Candles, *, granularity: str = "M1") -> UpsertCounts:
        """Store complete bars keyed ``(instrument, granularity, open time)``, idempotently."""
        ...

    def candles(
        self,
        instrument: str,
        *,
        granularity: str = "M1",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Candles:
        """Bars with ``since <= open time < until``, sorted; an empty ``Candles`` when none."""
        ...

    def count_trades(self) -> int: ...

    def last_close_at(self) -> datetime | None: ...

    def get_cursor(self, name: str) -> str | None: ...

    def set_cursor(self, name: str, value: str) -> None: ...

    def close(self) -> None: ...
