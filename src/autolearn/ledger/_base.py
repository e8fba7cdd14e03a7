"""The trade ledger seam: what every mechanism reads and every importer writes.

Contract (every implementation, SQLite or PostgreSQL, passes the same suite):
- ``upsert_*`` are idempotent: the same trade delivered twice is stored once, keyed by
  ``(broker_trade_id, close_tx_id)`` for trades and ``signal_id`` for shadow and entry signals;
  a re-delivery with changed fields updates the row (counted as ``updated``). A shadow signal
  also enters the signal log (not taken) when that has no row of its id.
- Reads return frozen values ordered by ``(close_at, broker_trade_id, close_tx_id)`` and filter
  on real timestamps (stored as integer microseconds), never on strings.
- A failure of the database is raised as ``LedgerError`` with the URL's password redacted.

``CommitOrdered`` is the optional second seam of a ledger several processes write (schema v3):
trades in the order they were committed, so an incremental reader (the gates) resumes after the
last one it saw and misses no trade however late its close time is (issue 19 item 1). A ledger
with one writer in close order (the replay's in-memory one) need not offer it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

from autolearn.core.model import EntrySignal, ShadowSignal, Trade

if TYPE_CHECKING:  # numpy is the learn extra: a bare worker imports this module without it
    from autolearn.backtest.candles import Candles

__all__ = [
    "CommitBatch",
    "CommitOrdered",
    "CommittedTrade",
    "Ledger",
    "PocketFiltered",
    "UpsertCounts",
    "Watermark",
]

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


class CommittedTrade(NamedTuple):
    """A trade and its commit sequence number (``trades.seq``: higher = committed later)."""

    seq: int
    trade: Trade


class CommitBatch(NamedTuple):
    """One commit-order read: the trades, the highest ``seq`` committed when it was read (lower
    than one read before: restored from a backup) and the ledger's identity (another one: the
    ledger was rebuilt; both mean a reader's position is meaningless and it must read again)."""

    head: int
    trades: list[CommittedTrade]
    ledger: str = ""


@runtime_checkable
class CommitOrdered(Protocol):
    """Trades by commit order. Contract: once a reader has seen ``seq`` n committed, no row
    with a ``seq`` <= n is committed after; an update gives the row a new, higher ``seq``."""

    def commit_head(self) -> int:
        """The highest committed ``seq`` (0: no trade yet)."""
        ...

    def read_committed(
        self, *, after: int = 0, closed_since: datetime | None = None
    ) -> CommitBatch:
        """Trades with ``seq > after`` and ``close_at >= closed_since`` by ``seq``, and the head,
        from one snapshot (every ``seq`` up to that head is in it)."""
        ...


@runtime_checkable
class PocketFiltered(Protocol):
    """A ledger that restricts a window's trades to some pockets in its own query (the SQL
    ones); ``tuner.cycle`` filters any other ledger's trades itself."""

    def trades_in_pockets(
        self,
        pockets: Collection[str],
        *,
        closed_since: datetime | None = None,
        closed_until: datetime | None = None,
    ) -> list[Trade]:
        """``trades(closed_since=..., closed_until=...)`` of ``pockets`` only, in ledger order."""
        ...
