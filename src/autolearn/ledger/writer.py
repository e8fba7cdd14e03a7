"""``TradeWriter``: the trading bot's side of the ledger, one closed trade / signal at a time.

The signal log (``record_signal``) is what lets the tuner learn from every candidate entry, not
only from the few that became trades: each one with its scores and why it was (not) taken.

A thin wrapper over ``SqlLedger.upsert_*`` that retries a transient failure (SQLite's
"database is locked", a dropped or refused PostgreSQL connection: ``LedgerUnavailable``) a few
times with a doubling, bounded pause; the upserts are idempotent, so a retry after a commit
whose answer was lost stores nothing twice. With a ``Spool`` (``spool.py``; ``connect`` gives
one in the state directory) a write still failing after the retries is kept on local disk and
written back, in order, at the next ``record_*`` or ``flush`` (issue 19 item 6). It must not
decide anything about trades, and must not swallow a failure: without a spool, and for any
non-transient failure, the last one is raised as ``LedgerError`` for the bot to log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from autolearn.adapters.logs import get_logger
from autolearn.core.model import EntrySignal, ShadowSignal, Trade
from autolearn.core.plausibility import TradeLimits
from autolearn.errors import LedgerError, LedgerUnavailable
from autolearn.ledger._base import UpsertCounts
from autolearn.ledger._engine import is_locked
from autolearn.ledger.spool import Kind, Spool, SpoolDrain, Value

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
    harmless (idempotent, keyed like the ledger). A transient failure (another SQLite writer
    holding the lock beyond the busy timeout, a PostgreSQL connection dropped or refused) is
    retried ``retries`` times with a doubling pause capped at ``max_backoff_s``. When it still
    fails: with a ``spool`` the value is appended to it (durably) and the call returns zero
    counts (``pending`` says how many wait); without one, ``LedgerError`` is raised so the bot
    can log it and carry on trading. Any other failure raises at once and is never spooled.
    While values wait, every ``record_*`` writes them back first, so the ledger receives them
    in the order they were recorded.
    """

    def __init__(
        self,
        ledger: SqlLedger,
        *,
        retries: int = 3,
        backoff_s: float = 0.05,
        max_backoff_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        spool: Spool | None = None,
    ) -> None:
        if retries < 0 or backoff_s < 0 or max_backoff_s < 0:
            raise ValueError(
                "retries, backoff_s and max_backoff_s must be >= 0, got "
                f"{retries}, {backoff_s}, {max_backoff_s}"
            )
        self._ledger = ledger
        self._retries = retries
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._spool = spool
        self._lock = threading.Lock()  # one spool order per process, whatever the threads
        self._log = get_logger("autolearn.ledger.writer")

    @classmethod
    def open(
        cls,
        url: str,
        *,
        limits: TradeLimits | None = None,
        spool_dir: Path | None = None,
        account: str = "",
        **kwargs: Any,
    ) -> TradeWriter:
        """Open the ledger at ``url`` (see :meth:`SqlLedger.open`) and wrap it.

        ``limits``: the plausible range of each field (default ``TradeLimits()``; the bot can
        pass ``load_trade_limits(bot_root)`` to use ``config/ledger.yaml``). A trade outside
        it (a future close time, an absurd P/L) raises ``InputError`` naming the field.
        ``spool_dir``: keep writes through a database outage in a spool there (one file per
        ledger; a directory inside a git checkout must be ignored by git); values a previous
        process spooled are written back at the first ``record_*`` or ``flush``.
        ``account``: the bot's key in a shared ledger (``SqlLedger.open``); its spool is its own.
        """
        # Local: sql.py re-exports TradeWriter, so a module-level import would be circular.
        from autolearn.ledger.sql import SqlLedger

        ledger = SqlLedger.open(url, limits=limits, account=account)
        try:
            spool = (
                Spool.in_state_dir(spool_dir, ledger.url, account=account)
                if spool_dir is not None
                else None
            )
        except BaseException:
            ledger.close()
            raise
        return cls(ledger, spool=spool, **kwargs)

    @property
    def ledger(self) -> SqlLedger:
        return self._ledger

    @property
    def spool(self) -> Spool | None:
        return self._spool

    @property
    def pending(self) -> int:
        """Values spooled and not yet written back (0 without a spool)."""
        return 0 if self._spool is None or self._spool.is_empty() else self._spool.pending()

    def flush(self) -> SpoolDrain:
        """Write every spooled value back now, in order.

        Raises:
            LedgerUnavailable: the database is still unreachable (the spool keeps them).
        """
        with self._lock:
            return self._drain()

    def record_trade(self, trade: Trade) -> UpsertCounts:
        return self._record("trade", trade)

    def record_signal(self, signal: EntrySignal) -> UpsertCounts:
        """Log one evaluated entry (``SqlLedger.upsert_signals``); repeating it is harmless.

        Record it when the decision is made (taken or not, with every score its entry knobs
        compare); record it again with ``broker_trade_id`` once the fill names the trade.
        """
        return self._record("signal", signal)

    def record_shadow_signal(self, signal: ShadowSignal) -> UpsertCounts:
        """Record a shadow signal; it also enters the signal log when that has no such id."""
        return self._record("shadow", signal)

    def close(self) -> None:
        self._ledger.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _record(self, kind: Kind, value: Value) -> UpsertCounts:
        with self._lock:
            spool = self._spool
            if spool is not None and not spool.is_empty():
                try:
                    self._drain()  # the older values first: the ledger sees them in order
                except LedgerUnavailable as exc:
                    return self._spooled(spool, kind, value, exc)
            try:
                return self._retrying(lambda: self._upsert(kind, [value]))
            except LedgerUnavailable as exc:
                if spool is None:
                    raise
                return self._spooled(spool, kind, value, exc)

    def _spooled(
        self, spool: Spool, kind: Kind, value: Value, exc: LedgerUnavailable
    ) -> UpsertCounts:
        spool.append(kind, value)
        self._log.warning("ledger_write_spooled", kind=kind, spool=str(spool.path), error=str(exc))
        return UpsertCounts()

    def _drain(self) -> SpoolDrain:
        if self._spool is None or self._spool.is_empty():
            return SpoolDrain()
        return self._spool.drain(
            lambda kind, values: self._retrying(lambda: self._upsert(kind, values))
        )

    def _upsert(self, kind: Kind, values: Sequence[Value]) -> UpsertCounts:
        if kind == "trade":
            return self._ledger.upsert_trades(values)  # type: ignore[arg-type]
        if kind == "signal":
            return self._ledger.upsert_signals(values)  # type: ignore[arg-type]
        return self._ledger.upsert_shadow_signals(values)  # type: ignore[arg-type]

    def _retrying(self, write: Callable[[], UpsertCounts]) -> UpsertCounts:
        pause = self._backoff_s
        for attempt in range(self._retries + 1):
            try:
                return write()
            except LedgerError as exc:
                transient = isinstance(exc, LedgerUnavailable) or is_locked(exc)
                if attempt == self._retries or not transient:
                    raise
            self._sleep(pause)
            pause = min(pause * 2, self._max_backoff_s)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
