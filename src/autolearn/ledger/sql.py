"""``SqlLedger``: the ``Ledger`` seam on SQLAlchemy Core (no ORM), for SQLite and PostgreSQL.

What it does, each fixing a failure of the original (original-system.md 2.1, 3.6):
- reads filter on integer epoch microseconds (the original compared ISO text to SQLite
  datetimes and let in a day extra) and return trades in the order
  ``(close_at, broker_trade_id, close_tx_id)``, identical on both backends;
- upserts compare each incoming row with the stored one, write only what changed, and count
  inserted / updated / unchanged exactly (on SQLite the batch runs under ``BEGIN IMMEDIATE``;
  on PostgreSQL two concurrent writers may mis-count, never mis-store);
- opening refuses a ledger whose ``schema_version`` is newer before anything is touched, and
  brings an older one to the current version (``_migrate.py``: alembic, under the write lock).

The tables live in ``_schema.py``, engines in ``_engine.py``, value <-> row conversion in
``_rows.py``; ``TradeWriter`` (``writer.py``), ``LedgerSummary`` (``summary.py``) and
``SCHEMA_VERSION`` are re-exported here because callers import them from this module.

An adapter (imperative shell): it owns no decision and must not import anything from the
learning loops. Every database failure, and every stored row that no longer decodes, leaves as
``LedgerError`` with the URL's password redacted.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from autolearn.core.accounts import account_problem
from autolearn.core.model import EntrySignal, ShadowSignal, Trade
from autolearn.core.plausibility import (
    TradeLimits,
    implausible_entry_signal,
    implausible_signal,
    implausible_trade,
)
from autolearn.core.timestamps import from_epoch_us, to_epoch_us
from autolearn.errors import InputError, LedgerError, LedgerUnavailable
from autolearn.ledger._base import CommitBatch, CommittedTrade, UpsertCounts, Watermark
from autolearn.ledger._engine import SQLITE_BUSY_TIMEOUT_MS, dialect_insert, make_engine
from autolearn.ledger._migrate import migrate
from autolearn.ledger._rows import (
    check_text,
    chunks,
    shadow_from_row,
    shadow_row,
    shadow_signal_row,
    signal_from_row,
    signal_row,
    trade_from_row,
    trade_row,
)
from autolearn.ledger._schema import (
    CANDLE_KEY,
    COMMIT_ORDERED,
    LEDGER_ID_KEY,
    NOT_CONTENT,
    SCHEMA_VERSION,
    SHADOW_KEY,
    SIGNAL_KEY,
    TRADE_KEY,
    candles_table,
    cursors_table,
    meta_table,
    schema_ready,
    shadow_table,
    signals_table,
    trades_table,
)
from autolearn.ledger.summary import LedgerSummary
from autolearn.ledger.writer import TradeWriter

if TYPE_CHECKING:
    from autolearn.backtest.candles import Candles

__all__ = ["SCHEMA_VERSION", "LedgerSummary", "SqlLedger", "TradeWriter"]

# Rows per statement batch: large enough for insertmanyvalues to amortise round trips, small
# enough that the key lookup (2 binds per row) stays far below SQLite's 32766-variable limit.
_CHUNK = 2_000

_T = TypeVar("_T")

# PostgreSQL advisory lock key serialising first-time schema creation (any 64-bit constant).
_SCHEMA_LOCK = 0x6175746F6C726E  # "autolrn"
# ... and the one ordering commits to ``trades`` (``_number_in_commit_order``).
_SEQ_LOCK = 0x6175746F736571  # "autoseq"
_RETRIES = 6
_RETRY_PAUSE_S = 0.05
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
# connection exception, insufficient resources, operator intervention, lock not available
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "53", "57P", "55P03")


class SqlLedger:
    """``Ledger`` on SQLAlchemy Core; construct with :meth:`open`.

    Thread-safe as far as the engine's pool is; one instance per process is the intended use.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        url_for_errors: str,
        clock: Callable[[], datetime],
        secret: str | None = None,
        limits: TradeLimits | None = None,
        wall_clock: Callable[[], datetime] | None = None,
        account: str = "",
    ) -> None:
        problem = account_problem(account)
        if problem is not None:
            raise LedgerError(f"ledger {url_for_errors}: account {problem}")
        self._engine = engine
        # v4: the bot this handle reads and writes for; every row it writes carries it and
        # every read filters on it, so two bots on one ledger never see each other's rows
        self.account = account
        self._url = url_for_errors
        self._clock = clock
        self._secret = secret
        self.limits = limits or TradeLimits()
        # "The future" is judged on the wall clock, not on the injectable ingestion clock
        # (a replay stamps ingestion in simulated time; its trades are still in the past).
        self._wall_clock = wall_clock or _utc_now
        self._file_id: tuple[int, int] | None = None

    # ----------------------------------------------------------------------------------------
    # Lifecycle

    @classmethod
    def open(
        cls,
        url: str,
        *,
        clock: Callable[[], datetime] | None = None,
        sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
        limits: TradeLimits | None = None,
        wall_clock: Callable[[], datetime] | None = None,
        ledger_id: str | None = None,
        account: str = "",
    ) -> SqlLedger:
        """Open (creating if needed) the ledger at ``url``.

        Args:
            url: ``sqlite:///path``, a plain filesystem path (SQLite), or
                ``postgresql+psycopg://user:pass@host/db`` (``postgresql://`` means psycopg).
            clock: returns the current UTC time for ``ingested_at_us``/``updated_at_us``;
                injectable for tests.
            sqlite_busy_timeout_ms: how long a SQLite statement waits for another process's
                write lock before failing with "database is locked".
            limits: the plausible range of every stored field (default ``TradeLimits()``);
                a row outside it is refused with ``InputError``.
            wall_clock: the real UTC time that "in the future" is judged against.
            ledger_id: pin the ledger's identity (``meta.ledger_id``, random by default) to
                this value: a replay's ledger must be byte-identical from run to run.
            account: the bot's key (``AUTOLEARN_ACCOUNT``; '' = the ledger's one bot): rows
                written carry it, reads see only its rows, cursors are its own.

        Raises:
            LedgerError: bad URL, unreachable database, or a schema newer than this code.
        """
        problem = account_problem(account)
        if problem is not None:  # before an engine exists: nothing to dispose
            raise LedgerError(f"ledger: account {problem}")
        engine, shown = make_engine(url, sqlite_busy_timeout_ms)
        secret = engine.url.password
        ledger = cls(
            engine,
            url_for_errors=shown,
            clock=clock or _utc_now,
            secret=secret,
            limits=limits,
            wall_clock=wall_clock,
            account=account,
        )
        try:
            ledger._prepare_schema()
            if ledger_id is not None:
                ledger._pin_ledger_id(ledger_id)
        except BaseException:
            engine.dispose()
            raise
        ledger._file_id = ledger._current_file_id()
        return ledger

    def _pin_ledger_id(self, ledger_id: str) -> None:
        with self._translate("pin ledger id"), self._write() as conn:
            conn.execute(
                sa.update(meta_table)
                .where(meta_table.c.key == LEDGER_ID_KEY)
                .values(value=ledger_id)
            )

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        scope = f", account={self.account!r}" if self.account else ""
        return f"SqlLedger({self._url!r}{scope})"

    @property
    def url(self) -> str:
        """The URL with its password redacted."""
        return self._url

    def _current_file_id(self) -> tuple[int, int] | None:
        """``(st_dev, st_ino)`` of a SQLite ledger's file (None: not a file, or gone)."""
        database = self._engine.url.database
        if self._engine.dialect.name != "sqlite" or database in (None, "", ":memory:"):
            return None
        try:
            st = os.stat(database)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def is_replaced(self) -> bool:
        """True when the SQLite file was deleted or replaced since :meth:`open`.

        An open connection keeps reading the deleted file's inode: a long-running reader (the
        gates) must notice and reopen, or it reads a stale ledger without any reason.
        """
        return self._file_id is not None and self._current_file_id() != self._file_id

    def _prepare_schema(self) -> None:
        # Read first: opening a complete ledger must not need the write lock (the bot may be
        # writing); only a new or incomplete ledger is created, under a write transaction.
        with self._translate("read schema"), self._engine.connect() as conn:
            if schema_ready(conn, url_for_errors=self._url):
                return

        def create() -> None:
            with self._write() as conn:
                if conn.dialect.name == "postgresql":
                    # Concurrent first opens would race in CREATE TABLE/TYPE (unique violation
                    # on pg_type, deadlocks): one creates, the others wait and find it ready.
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK}
                    )
                if schema_ready(conn, url_for_errors=self._url):
                    return  # another process created or migrated it meanwhile
                migrate(conn, url_for_errors=self._url)

        with self._translate("create or migrate schema"):
            self._retry_transient(create)

    # ----------------------------------------------------------------------------------------
    # Writes

    def upsert_trades(self, trades: Iterable[Trade]) -> UpsertCounts:
        """Insert new trades, update changed ones, skip identical ones; count each kind.

        Each chunk of rows is its own short transaction (so the bot's writes interleave with a
        large import); if one fails, earlier chunks stay stored and a retry is harmless.

        Every trade is checked against :attr:`limits` first (no future times, no absurd
        magnitudes): an implausible one raises ``InputError`` naming it, before its chunk is
        written. Importers reject such rows themselves, so this is the last line of defence.
        """
        now = self._wall_clock()
        rows = (self._own(trade_row(self._plausible_trade(t, now))) for t in trades)
        return self._upsert(trades_table, TRADE_KEY, rows, "upsert_trades")

    def upsert_shadow_signals(self, signals: Iterable[ShadowSignal]) -> UpsertCounts:
        """As :meth:`upsert_trades`, keyed by ``signal_id``; the counts are the shadow rows'.

        Each shadow signal also lands in the signal log (``signals``: not taken, its reason or
        ``shadow``, no scores), in the same transaction, exactly as the v2 migration copies the
        older ones. Only when the log has no row of that ``signal_id`` yet: a signal the bot
        recorded itself (:meth:`upsert_signals`, with its scores) is never overwritten by its
        poorer shadow copy, whichever of the two arrives first.
        """
        now = self._wall_clock()
        rows = (self._own(shadow_row(self._plausible_signal(s, now))) for s in signals)
        return self._upsert(
            shadow_table, SHADOW_KEY, rows, "upsert_shadow_signals", also=_log_shadows
        )

    def upsert_signals(self, signals: Iterable[EntrySignal]) -> UpsertCounts:
        """Insert new signal-log rows, update changed ones, skip identical ones (by ``signal_id``).

        As :meth:`upsert_trades`: one short transaction per chunk, and every signal checked
        against :attr:`limits` first (no future ``at`` beyond the skew tolerance, no absurd
        price, SL/TP, timeout or score): an implausible one raises ``InputError`` naming it.
        """
        now = self._wall_clock()
        rows = (self._own(signal_row(self._plausible_entry_signal(s, now))) for s in signals)
        return self._upsert(signals_table, SIGNAL_KEY, rows, "upsert_signals")

    def _own(self, row: dict[str, Any]) -> dict[str, Any]:
        row["account"] = self.account
        return row

    def _plausible_trade(self, trade: Trade, now: datetime) -> Trade:
        found = implausible_trade(trade, now, self.limits)
        if found:
            raise InputError(
                f"ledger {self._url}: refused trade {trade.broker_trade_id}/{trade.close_tx_id} "
                f"(source {trade.source or 'unknown'}): " + "; ".join(f.describe() for f in found)
            )
        return trade

    def _plausible_signal(self, signal: ShadowSignal, now: datetime) -> ShadowSignal:
        found = implausible_signal(signal, now, self.limits)
        if found:
            raise InputError(
                f"ledger {self._url}: refused shadow signal {signal.signal_id}: "
                + "; ".join(f.describe() for f in found)
            )
        return signal

    def _plausible_entry_signal(self, signal: EntrySignal, now: datetime) -> EntrySignal:
        found = implausible_entry_signal(signal, now, self.limits)
        if found:
            raise InputError(
                f"ledger {self._url}: refused signal {signal.signal_id} ({signal.strategy} "
                f"{signal.instrument} at {signal.at.isoformat()}): "
                + "; ".join(f.describe() for f in found)
            )
        return signal

    def set_cursor(self, name: str, value: str) -> None:
        check_text({"name": name, "value": value})
        now_us = to_epoch_us(self._clock())
        with self._translate("set_cursor"), self._write() as conn:
            stmt = dialect_insert(conn, cursors_table).values(
                account=self.account, name=name, value=value, updated_at_us=now_us
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["account", "name"],
                    set_={"value": stmt.excluded.value, "updated_at_us": now_us},
                )
            )

    def _upsert(
        self,
        table: sa.Table,
        key: tuple[str, ...],
        rows: Iterable[dict[str, Any]],
        operation: str,
        *,
        also: Callable[[Connection, list[dict[str, Any]], int], None] | None = None,
    ) -> UpsertCounts:
        """Upsert ``rows`` chunk by chunk; ``also(conn, chunk, now_us)`` runs in each chunk's
        transaction after it (a write that must land together with the rows, or not at all)."""
        total = UpsertCounts()
        with self._translate(operation):
            for chunk in chunks(rows, _CHUNK):

                def write(chunk: list[dict[str, Any]] = chunk) -> UpsertCounts:
                    with self._write() as conn:
                        counts = self._upsert_chunk(conn, table, key, chunk)
                        if also is not None:
                            also(conn, chunk, to_epoch_us(self._clock()))
                        return counts

                total = total + self._retry_transient(write)
        return total

    def _retry_transient(self, work: Callable[[], _T]) -> _T:
        """Run ``work`` (one whole transaction), again after a deadlock or serialization failure.

        PostgreSQL aborts one of two transactions that deadlock (40P01) or conflict (40001);
        the transaction is whole, so running it again is the documented remedy.
        """
        for attempt in range(_RETRIES):
            try:
                return work()
            except sa.exc.DBAPIError as exc:
                if attempt == _RETRIES - 1 or _sqlstate(exc) not in _RETRY_SQLSTATES:
                    raise
            time.sleep(_RETRY_PAUSE_S * (2**attempt) * (0.5 + random.random()))  # noqa: S311
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _upsert_chunk(
        self,
        conn: Connection,
        table: sa.Table,
        key: tuple[str, ...],
        chunk: list[dict[str, Any]],
    ) -> UpsertCounts:
        keys = {tuple(r[k] for k in key) for r in chunk}
        stored: dict[tuple[Any, ...], dict[str, Any]] = {}
        content = [c.name for c in table.columns if c.name not in NOT_CONTENT]
        for mapping in _stored_rows(conn, table, key, keys, content):
            found_key = tuple(mapping[k] for k in key)
            if found_key in keys:
                stored[found_key] = mapping
        # Walk the batch in order so a key repeated inside it is counted like separate calls.
        final: dict[tuple[Any, ...], dict[str, Any]] = {}
        inserted = updated = unchanged = 0
        now_us = to_epoch_us(self._clock())
        for row in chunk:
            k = tuple(row[n] for n in key)
            before = final.get(k, stored.get(k))
            if before is None:
                inserted += 1
            elif all(before[n] == row[n] for n in content):
                unchanged += 1
                continue
            else:
                updated += 1
            final[k] = {**row, "ingested_at_us": now_us}
        if final:
            rows = list(final.values())
            if table.name in COMMIT_ORDERED:
                _number_in_commit_order(conn, table, rows)
            if conn.dialect.name == "sqlite":
                sql, names = _sqlite_upsert(conn, table, key, content, tuple(rows[0]))
                conn.exec_driver_sql(sql, [tuple(r[n] for n in names) for r in rows])
            else:
                conn.execute(_upsert_statement(conn, table, key, content), rows)
        return UpsertCounts(inserted, updated, unchanged)

    # ----------------------------------------------------------------------------------------
    # Reads

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
        c = trades_table.c
        query = self._trade_select()
        if closed_since is not None:
            query = query.where(c.close_at_us >= to_epoch_us(closed_since))
        if closed_until is not None:
            query = query.where(c.close_at_us < to_epoch_us(closed_until))
        for column, value in (
            (c.pocket, pocket),
            (c.strategy, strategy),
            (c.instrument, instrument),
        ):
            if value is not None:
                query = query.where(column == value)
        return self._read("trades", query, trade_from_row)

    def trades_in_pockets(
        self,
        pockets: Collection[str],
        *,
        closed_since: datetime | None = None,
        closed_until: datetime | None = None,
    ) -> list[Trade]:
        """``trades`` of the window restricted to ``pockets`` in SQL (``PocketFiltered``).

        On SQLite ``+pocket`` keeps the planner on the close-time index: with a plain
        ``pocket IN`` it picks the (pocket, strategy, close) index and sorts every trade of
        the pockets, ever (measured 3x slower at 1M trades).
        """
        if not pockets:
            return []
        c = trades_table.c
        pocket = sa.literal_column("+trades.pocket") if self._is_sqlite() else c.pocket
        query = self._trade_select().where(pocket.in_(sorted(pockets)))
        if closed_since is not None:
            query = query.where(c.close_at_us >= to_epoch_us(closed_since))
        if closed_until is not None:
            query = query.where(c.close_at_us < to_epoch_us(closed_until))
        return self._read("trades", query, trade_from_row)

    def _trade_select(self) -> sa.Select[Any]:
        return _trade_select(self.account)

    def _is_sqlite(self) -> bool:
        return bool(self._engine.dialect.name == "sqlite")

    def trades_after(self, watermark: Watermark | None, limit: int | None = None) -> list[Trade]:
        """Trades strictly after ``watermark`` in the ledger order (incremental readers)."""
        query = self._trade_select()
        if watermark is not None:
            at, trade_id, tx_id = watermark
            at_us = to_epoch_us(at)
            c = trades_table.c
            # Expanded row-value compare, portable across SQLite and PostgreSQL. The AND-ed
            # range prefix lets the planner seek ix_trades_order instead of scanning it (an
            # OR alone made SQLite walk the whole index: ~12 ms per call on 100k trades).
            query = query.where(
                c.close_at_us >= at_us,
                sa.or_(
                    c.close_at_us > at_us,
                    sa.and_(c.close_at_us == at_us, c.broker_trade_id > trade_id),
                    sa.and_(
                        c.close_at_us == at_us,
                        c.broker_trade_id == trade_id,
                        c.close_tx_id > tx_id,
                    ),
                ),
            )
        if limit is not None:
            if limit < 0:
                raise ValueError(f"limit must be >= 0 or None, got {limit}")
            query = query.limit(limit)
        return self._read("trades_after", query, trade_from_row)

    def commit_head(self) -> int:
        """The highest committed ``seq`` (``CommitOrdered``; 0 on an empty ledger)."""
        query = sa.select(sa.func.coalesce(sa.func.max(trades_table.c.seq), 0))
        with self._translate("commit_head"), self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def trades_committed(
        self,
        *,
        after: int = 0,
        upto: int | None = None,
        closed_since: datetime | None = None,
    ) -> list[CommittedTrade]:
        """Trades with ``after < seq <= upto`` (and ``close_at >= closed_since``), by ``seq``."""
        trades = self.read_committed(after=after, closed_since=closed_since).trades
        return trades if upto is None else [c for c in trades if c.seq <= upto]

    def read_committed(
        self, *, after: int = 0, closed_since: datetime | None = None
    ) -> CommitBatch:
        """``CommitOrdered``: trades with ``seq > after`` (and ``close_at >= closed_since``) by
        ``seq``, with the head, in one statement (one snapshot, one round trip).

        Resuming with ``after`` = the highest ``seq`` read misses nothing, because ``seq`` is
        assigned in commit order (``_number_in_commit_order``).
        """
        c = trades_table.c
        ident = sa.select(meta_table.c.value).where(meta_table.c.key == LEDGER_ID_KEY)
        head = sa.select(
            sa.func.coalesce(sa.func.max(c.seq), 0).label("head"),
            ident.scalar_subquery().label("ledger_id"),
        ).subquery()
        # ``+account`` on SQLite: with a plain ``account = ?`` its planner walks the account's
        # whole ledger order index instead of seeking ``ix_trades_seq`` past ``after`` (a
        # refresh with nothing new cost 1.6 ms at 10k trades, 36 ms at 100k; 0.01 ms so)
        account = sa.literal_column("+trades.account") if self._is_sqlite() else c.account
        match = sa.and_(c.seq > after, account == self.account)
        if closed_since is not None:
            match = sa.and_(match, c.close_at_us >= to_epoch_us(closed_since))
        # LEFT JOIN from the one-row head: the head comes back even when no trade matches.
        query = (
            sa.select(head.c.head, head.c.ledger_id, trades_table)
            .select_from(head.outerjoin(trades_table, match))
            .order_by(c.seq)
        )
        with self._translate("read_committed"), self._engine.connect() as conn:
            rows = [row._mapping for row in conn.execute(query)]
        try:
            trades = [
                CommittedTrade(int(r["seq"]), trade_from_row(r))
                for r in rows
                if r["seq"] is not None
            ]
        except LedgerError as exc:
            raise LedgerError(f"ledger {self._url}: read_committed failed: {exc}") from exc
        if not rows:  # pragma: no cover - the one-row head always comes back
            return CommitBatch(0, trades)
        return CommitBatch(int(rows[0]["head"]), trades, str(rows[0]["ledger_id"] or ""))

    def shadow_signals(
        self,
        *,
        since: datetime | None = None,
        pocket: str | None = None,
        strategy: str | None = None,
    ) -> list[ShadowSignal]:
        """Shadow signals with ``at >= since`` matching the filters, ordered by (at, signal_id)."""
        c = shadow_table.c
        query = (
            sa.select(shadow_table).where(c.account == self.account).order_by(c.at_us, c.signal_id)
        )
        if since is not None:
            query = query.where(c.at_us >= to_epoch_us(since))
        if pocket is not None:
            query = query.where(c.pocket == pocket)
        if strategy is not None:
            query = query.where(c.strategy == strategy)
        return self._read("shadow_signals", query, shadow_from_row)

    def signals(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        instrument: str | None = None,
        pocket: str | None = None,
        strategy: str | None = None,
    ) -> list[EntrySignal]:
        """Signal-log rows with ``since <= at < until`` matching every given filter, ordered by
        ``(at, signal_id)`` (code point order of the id, as on both backends)."""
        c = signals_table.c
        query = (
            sa.select(signals_table).where(c.account == self.account).order_by(c.at_us, c.signal_id)
        )
        if since is not None:
            query = query.where(c.at_us >= to_epoch_us(since))
        if until is not None:
            query = query.where(c.at_us < to_epoch_us(until))
        for column, value in (
            (c.instrument, instrument),
            (c.pocket, pocket),
            (c.strategy, strategy),
        ):
            if value is not None:
                query = query.where(column == value)
        return self._read("signals", query, signal_from_row)

    def count_trades(self) -> int:
        with self._translate("count_trades"), self._engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(trades_table)
                    .where(trades_table.c.account == self.account)
                ).scalar_one()
            )

    def last_close_at(self) -> datetime | None:
        with self._translate("last_close_at"), self._engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.max(trades_table.c.close_at_us)).where(
                    trades_table.c.account == self.account
                )
            ).scalar_one()
        return None if value is None else from_epoch_us(int(value))

    def get_cursor(self, name: str) -> str | None:
        query = sa.select(cursors_table.c.value).where(
            cursors_table.c.account == self.account, cursors_table.c.name == name
        )
        with self._translate("get_cursor"), self._engine.connect() as conn:
            value = conn.execute(query).scalar_one_or_none()
        return None if value is None else str(value)

    def summary(self) -> LedgerSummary:
        """Counts per pocket / strategy / close reason / exit reason, time span and totals."""
        c = trades_table.c
        with self._translate("summary"), self._engine.connect() as conn:
            totals = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.min(c.close_at_us),
                    sa.func.max(c.close_at_us),
                    sa.func.coalesce(sa.func.sum(c.pl_pips), 0.0),
                    sa.func.coalesce(sa.func.sum(c.pl_account), 0.0),
                ).where(c.account == self.account)
            ).one()
            signals = conn.execute(
                sa.select(sa.func.count())
                .select_from(shadow_table)
                .where(shadow_table.c.account == self.account)
            ).scalar_one()

            def counts(column: sa.Column[Any]) -> dict[str, int]:
                query = (
                    sa.select(column, sa.func.count().label("n"))
                    .where(c.account == self.account)
                    .group_by(column)
                    .order_by(sa.desc("n"), column)
                )
                return {str(k): int(n) for k, n in conn.execute(query)}

            return LedgerSummary(
                trades=int(totals[0]),
                shadow_signals=int(signals),
                by_pocket=counts(c.pocket),
                by_strategy=counts(c.strategy),
                by_broker_close_reason=counts(c.broker_close_reason),
                by_exit_reason=counts(c.exit_reason),
                first_close_at=None if totals[1] is None else from_epoch_us(int(totals[1])),
                last_close_at=None if totals[2] is None else from_epoch_us(int(totals[2])),
                total_pl_pips=float(totals[3]),
                total_pl_account=float(totals[4]),
            )

    def _read(
        self, operation: str, query: sa.Select[Any], convert: Callable[[sa.RowMapping], _T]
    ) -> list[_T]:
        with self._translate(operation), self._engine.connect() as conn:
            try:
                return [convert(row._mapping) for row in conn.execute(query)]
            except LedgerError as exc:  # an undecodable row (_rows.py): say which ledger
                raise LedgerError(f"ledger {self._url}: {operation} failed: {exc}") from exc

    # ----------------------------------------------------------------------------------------
    # Plumbing

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite: the lock is taken up front)."""
        with self._engine.connect() as conn:
            conn = conn.execution_options(autolearn_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _translate(self, operation: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            orig = getattr(exc, "orig", None)
            detail = str(orig if orig is not None else exc).strip().splitlines()[0]
            if self._secret:
                detail = detail.replace(self._secret, "***")  # drivers may echo the DSN
            kind = LedgerUnavailable if _is_transient(exc) else LedgerError
            hint = " (transient: retry later)" if kind is LedgerUnavailable else ""
            raise kind(f"ledger {self._url}: {operation} failed: {detail}{hint}") from exc
        except OSError as exc:
            raise LedgerError(f"ledger {self._url}: {operation} failed: {exc}") from exc

    # ----------------------------------------------------------------------------------------
    # Candles (issue 12's store: complete bars, mid OHLC and the spread; numpy loads lazily)

    def upsert_candles(self, candles: Candles, *, granularity: str = "M1") -> UpsertCounts:
        """Store every bar of ``candles`` under ``granularity``; count inserted/updated/unchanged.

        Keyed ``(instrument, granularity, bar open time)``: re-storing a bar is ``unchanged``,
        a bar whose prices, spread, volume or source differ is ``updated`` (the last writer
        wins, as for trades). ``candles.source`` is stored per bar.

        Raises:
            InputError: unknown granularity, one that does not match ``candles.timeframe_s``,
                or a bar that opens in the future (wall clock): nothing is written then.
        """
        from autolearn.ledger._candle_rows import candle_rows

        rows = list(candle_rows(candles, granularity))
        if rows:
            now_us = to_epoch_us(self._wall_clock())
            newest = rows[-1]["time_us"]
            if newest > now_us:
                raise InputError(
                    f"ledger {self._url}: refused candles of {candles.instrument} "
                    f"{granularity} (source {candles.source or 'unknown'}): bar at "
                    f"{from_epoch_us(newest).isoformat()} opens in the future"
                )
        return self._upsert(candles_table, CANDLE_KEY, rows, "upsert_candles")

    def candles(
        self,
        instrument: str,
        *,
        granularity: str = "M1",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Candles:
        """Stored bars with ``since <= open time < until``, sorted (empty ``Candles``: none).

        The timeframe comes from ``granularity`` (``M1`` = 60 s, ``M5``, ``H1``...); an unknown
        one raises ``InputError``. Gaps (weekends, quiet minutes) stay gaps.
        """
        from autolearn.ledger._candle_rows import candles_from_rows, granularity_seconds

        granularity_seconds(granularity)  # before any query: a typo is the caller's error
        c = candles_table.c
        query = (
            sa.select(c.time_us, c.open, c.high, c.low, c.close, c.spread_pips, c.volume, c.source)
            .where(c.instrument == instrument, c.granularity == granularity)
            .order_by(c.time_us)
        )
        if since is not None:
            query = query.where(c.time_us >= to_epoch_us(since))
        if until is not None:
            query = query.where(c.time_us < to_epoch_us(until))
        with self._translate("candles"), self._engine.connect() as conn:
            rows = [row._mapping for row in conn.execute(query)]
        try:
            return candles_from_rows(
                rows, instrument=instrument, granularity=granularity, source=f"ledger {self._url}"
            )
        except LedgerError as exc:
            raise LedgerError(f"ledger {self._url}: candles failed: {exc}") from exc


def _key_narrowing(
    names: tuple[str, ...], keys: set[tuple[Any, ...]]
) -> list[tuple[str, tuple[Any, ...]]]:
    """Extra filters for the stored-row lookup of a multi-column key (a superset, never less):
    ``(column, (low, high))`` for a range, ``(column, (value,))`` for one value.

    An integer key column (the candles' ``time_us``) is bounded by the batch's range and a text
    one fixed when the batch has one value: without it a chunk of bars would read every stored
    bar of the instrument.
    """
    narrow: list[tuple[str, tuple[Any, ...]]] = []
    for position, name in enumerate(names[1:], start=1):
        values = {k[position] for k in keys}
        if all(isinstance(v, int) for v in values):
            narrow.append((name, (min(values), max(values))))
        elif len(values) == 1:
            narrow.append((name, (next(iter(values)),)))
    return narrow


def _stored_rows(
    conn: Connection,
    table: sa.Table,
    key: tuple[str, ...],
    keys: set[tuple[Any, ...]],
    content: list[str],
) -> Iterator[dict[str, Any]]:
    """The stored rows (``content`` columns) that may hold one of ``keys`` (a superset).

    Looked up by the leading key column only: a plain IN on the primary key's prefix is
    index-friendly on both backends (a row-value IN is not); the caller ignores extra rows.
    """
    if not keys:
        return  # nothing to look up (and SQLite refuses an empty IN list)
    leads = sorted({k[0] for k in keys})
    narrow = _key_narrowing(key, keys)
    if conn.dialect.name == "sqlite":
        # The same query as text, on the driver: SQLAlchemy's statement building and parameter
        # processing cost more than SQLite's lookup for the replay's thousands of small batches.
        # The values are the driver's (a Boolean reads back as 0/1, which compares equal).
        quote = conn.dialect.identifier_preparer.quote
        where = [f"{quote(key[0])} IN ({', '.join('?' * len(leads))})"]
        params: list[Any] = list(leads)
        for name, values in narrow:
            where.append(
                f"{quote(name)} BETWEEN ? AND ?" if len(values) == 2 else f"{quote(name)} = ?"
            )
            params.extend(values)
        # only the schema's own (quoted) identifiers are interpolated; every value is bound
        sql = (
            f"SELECT {', '.join(quote(n) for n in content)} FROM {quote(table.name)} "  # noqa: S608
            f"WHERE {' AND '.join(where)}"
        )
        for found in conn.exec_driver_sql(sql, tuple(params)):
            yield dict(zip(content, found, strict=True))
        return
    c = table.c
    terms = [
        c[name].between(*values) if len(values) == 2 else c[name] == values[0]
        for name, values in narrow
    ]
    query = sa.select(*[c[n] for n in content]).where(c[key[0]].in_(leads), *terms)
    for found in conn.execute(query):
        yield dict(found._mapping)


# (table, key, row columns) -> SQLite upsert text and its parameter order
_SQLITE_UPSERTS: dict[tuple[sa.Table, tuple[str, ...], tuple[str, ...]], tuple[str, list[str]]] = {}


def _sqlite_upsert(
    conn: Connection,
    table: sa.Table,
    key: tuple[str, ...],
    content: list[str],
    columns: tuple[str, ...],
) -> tuple[str, list[str]]:
    """:func:`_upsert_statement` compiled once for SQLite: its text and parameter names."""
    cache_key = (table, key, columns)
    found = _SQLITE_UPSERTS.get(cache_key)
    if found is None:
        compiled = _upsert_statement(conn, table, key, content).compile(
            dialect=conn.dialect, column_keys=list(columns)
        )
        found = _SQLITE_UPSERTS[cache_key] = (compiled.string, list(compiled.positiontup or ()))
    return found


# (dialect, table, key) -> its INSERT .. ON CONFLICT DO UPDATE: built once, not per chunk (a
# replay upserts thousands of small batches, and building ``excluded`` cost more than the write)
_UPSERTS: dict[tuple[str, sa.Table, tuple[str, ...]], Any] = {}


def _upsert_statement(
    conn: Connection, table: sa.Table, key: tuple[str, ...], content: list[str]
) -> Any:
    """The upsert of ``table`` by ``key``: every content column, ``ingested_at_us`` and (for a
    commit-ordered table) ``seq`` set."""
    cache_key = (conn.dialect.name, table, key)
    stmt = _UPSERTS.get(cache_key)
    if stmt is None:
        insert = dialect_insert(conn, table)
        bookkeeping = {"ingested_at_us": insert.excluded.ingested_at_us}
        if table.name in COMMIT_ORDERED:
            bookkeeping["seq"] = insert.excluded.seq  # an update moves the row forward too
        stmt = _UPSERTS[cache_key] = insert.on_conflict_do_update(
            index_elements=list(key),
            set_={n: insert.excluded[n] for n in content if n not in key} | bookkeeping,
        )
    return stmt


def _number_in_commit_order(
    conn: Connection, table: sa.Table, rows: Iterable[dict[str, Any]]
) -> None:
    """Give each row the next ``seq`` values, in an order that is the commit order.

    SQLite's ``BEGIN IMMEDIATE`` already serialises writers. On PostgreSQL two transactions
    taking values from a sequence can commit in the opposite order, and a reader resuming after
    the higher value would never see the lower one (issue 19: 9-10 % of trades missed). The
    transaction-level advisory lock taken here, just before the write and held until commit,
    makes the order of ``seq`` the order of commits: whoever sees value n committed can never
    later see a value below n appear. Held for one statement and the commit; deadlock-free
    because it is the first lock this transaction takes on the table's rows.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SEQ_LOCK})
    head = conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.seq), 0))).scalar_one()
    for n, row in enumerate(rows, start=int(head) + 1):
        row["seq"] = n


def _sqlstate(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(getattr(orig, "sqlstate", None) or "")


def _is_transient(exc: SQLAlchemyError) -> bool:
    """A failure that resolves itself: unreachable server, deadlock, conflict, lock timeout."""
    state = _sqlstate(exc)
    if state:
        return state in _RETRY_SQLSTATES or state.startswith(_TRANSIENT_SQLSTATE_PREFIXES)
    if isinstance(exc, sa.exc.OperationalError):
        text = str(getattr(exc, "orig", exc)).lower()
        # psycopg: no SQLSTATE when it never reached the server; SQLite: another writer.
        return "locked" in text or "connect" in text or "connection" in text or "timeout" in text
    return False


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _log_shadows(conn: Connection, chunk: list[dict[str, Any]], now_us: int) -> None:
    """Put each shadow row of ``chunk`` into the signal log unless it already has that id."""
    latest = {row["signal_id"]: row for row in chunk}  # a repeated id: its last version
    rows = [
        {**shadow_signal_row(r), "account": r["account"], "ingested_at_us": now_us}
        for r in latest.values()
    ]
    stmt = _UPSERTS.get((conn.dialect.name, signals_table, ()))  # () : "insert if new"
    if stmt is None:
        stmt = dialect_insert(conn, signals_table).on_conflict_do_nothing(
            index_elements=["account", "signal_id"]
        )
        _UPSERTS[(conn.dialect.name, signals_table, ())] = stmt
    conn.execute(stmt, rows)


def _trade_select(account: str) -> sa.Select[Any]:
    c = trades_table.c
    return (
        sa.select(trades_table)
        .where(c.account == account)
        .order_by(c.close_at_us, c.broker_trade_id, c.close_tx_id)
    )
