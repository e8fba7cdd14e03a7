"""``TradeWriter``: the trading bot's side of the ledger, one closed trade / signal at a time.

The signal log (``record_signal``) is what lets the tuner learn from every candidate entry, not
only from the few that became trades: each one with its scores and why it was (not) taken.

A thin wrapper over ``SqlLedger.upsert_*`` that retries SQLite's "database is locked" a few
times with a doubling pause. It must not decide anything about trades, and must not swallow a
failure: the last one is raised as ``LedgerError`` for the bot to log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

from autolearn.core.model import EntrySignal, ShadowSignal, Trade
from autolearn.core.plausibility import TradeLimits
from autolearn.errors import LedgerError
from autolearn.ledger._base import UpsertCounts
from autolearn.ledger._engine import is_locked

if TYPE_CHECKING:
    from autolearn.ledger.sql import SqlLedger

__all__ = ["TradeWriter"]


class TradeWriter:
    """The bot's side of the ledger: record each closed trade / shadow signal as it happens.

    Usage from the bot (one writer per process; cheap calls, safe to repeat)::

        writer = TradeWriter.open("sqlite:////var/lib/bot/ledger.db")
        writer.record_trade(trade)            # on every ORDER_FILL closing or reducing a trade
        writer.record_signal(signal)          # every entry a strategy evaluated, taken or not
        writer.record_shadow_signal(signal)   # whenever a blocked/shadow entry is decided
        writer.close()

    It is exactly ``SqlLedger.upsert_*`` for one value, so re-recording the same fill is
    harmless (idempotent, keyed like the ledger). On SQLite, when another process holds the
    write lock beyond the ledger's busy timeout ("database is locked"), the write is retried
    ``retries`` times with a short doubling pause; any other failure, or the last locked one,
    raises ``LedgerError`` so the bot can log it and carry on trading.
    """

    def __init__(
        self,
        ledger: SqlLedger,
        *,
        retries: int = 3,
        backoff_s: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if retries < 0 or backoff_s < 0:
            raise ValueError(f"retries and backoff_s must be >= 0, got {retries}, {backoff_s}")
        self._ledger = ledger
        self._retries = retries
        self._backoff_s = backoff_s
        self._sleep = sleep

    @classmethod
    def open(cls, url: str, *, limits: TradeLimits | None = None, **kwargs: Any) -> TradeWriter:
        """Open the ledger at ``url`` (see :meth:`SqlLedger.open`) and wrap it.

        ``limits``: the plausible range of each field (default ``TradeLimits()``; the bot can
        pass ``load_trade_limits(bot_root)`` to use ``config/ledger.yaml``). A trade outside
        it (a future close time, an absurd P/L) raises ``InputError`` naming the field.
        """
        # Local: sql.py re-exports TradeWriter, so a module-level import would be circular.
        from autolearn.ledger.sql import SqlLedger

        return cls(SqlLedger.open(url, limits=limits), **kwargs)

    @property
    def ledger(self) -> SqlLedger:
        return self._ledger

    def record_trade(self, trade: Trade) -> UpsertCounts:
        return self._retrying(lambda: self._ledger.upsert_trades([trade]))

    def record_signal(self, signal: EntrySignal) -> UpsertCounts:
        """Log one evaluated entry (``SqlLedger.upsert_signals``); repeating it is harmless.

        Record it when the decision is made (taken or not, with every score its entry knobs
        compare); record it again with ``broker_trade_id`` once the fill names the trade.
        """
        return self._retrying(lambda: self._ledger.upsert_signals([signal]))

    def record_shadow_signal(self, signal: ShadowSignal) -> UpsertCounts:
        """Record a shadow signal; it also enters the signal log when that has no such id."""
        return self._retrying(lambda: self._ledger.upsert_shadow_signals([signal]))

    def close(self) -> None:
        self._ledger.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _retrying(self, write: Callable[[], UpsertCounts]) -> UpsertCounts:
        pause = self._backoff_s
        for attempt in range(self._retries + 1):
            try:
                return write()
            except LedgerError as exc:
                if attempt == self._retries or not is_locked(exc):
                    raise
            self._sleep(pause)
            pause *= 2
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
