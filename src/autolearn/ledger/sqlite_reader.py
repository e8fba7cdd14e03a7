"""``open_reader``: the ledger a reading mechanism opens, on the stdlib ``sqlite3`` when it can.

``autolearn tune`` runs every ten minutes and reads one window of trades. Through SQLAlchemy
that run paid ~0.15 s CPU of import and a Row mapping per trade before any decision (issue 16).
``SqliteReader`` answers the hot reads (``trades``, ``trades_in_pockets``, ``last_close_at``,
``count_trades``, and the gates' commit-order refresh ``read_committed`` / ``commit_head``)
with plain SQL on a ``sqlite3`` connection, decoded by ``_rows.trade_from_values`` as
``SqlLedger`` decodes them; every other method (writes, the signal log, candles, cursors) goes
to a full ``SqlLedger`` opened on first use, so nothing but the hot path has a second
implementation.

The gates read the ledger before every entry when a trade may have closed; through SQLAlchemy
that refresh cost ~0.6 ms CPU (building and caching the statement, a Row per trade), through
``sqlite3`` ~0.05 ms (issue 16). A refresh when nothing was committed since the last one
(``PRAGMA data_version`` unchanged: no other connection committed) answers from what the last
read saw without a query.

Only a ready ledger is read this way: an existing SQLite file named by ``sqlite:///path`` (or a
plain path) whose ``meta.schema_version`` and alembic stamp are this code's. Anything else
(PostgreSQL, ``:memory:``, URL options, a missing file, an older or newer schema) is opened as
``SqlLedger``, so creating, migrating and refusing a ledger stay in one place.

An adapter: it owns no decision. Never writes: it sets no pragma that changes the file (the
journal mode is the file's own, set by ``SqlLedger``). A database failure leaves as
``LedgerError`` (``LedgerUnavailable`` for "database is locked"), worded like ``SqlLedger``'s.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self, TypeVar

from autolearn.core.accounts import account_problem
from autolearn.core.model import EntrySignal, ShadowSignal, Trade
from autolearn.core.timestamps import from_epoch_us, to_epoch_us
from autolearn.errors import LedgerError, LedgerUnavailable
from autolearn.ledger._base import CommitBatch, CommittedTrade, UpsertCounts, Watermark
from autolearn.ledger._rows import (
    TRADE_COLUMNS,
    shadow_from_row,
    signal_from_row,
    trade_from_values,
)
from autolearn.ledger._version import SCHEMA_VERSION

if TYPE_CHECKING:
    from autolearn.backtest.candles import Candles
    from autolearn.ledger.sql import SqlLedger

__all__ = ["SqliteReader", "open_reader"]

_T = TypeVar("_T")

# ``_engine.SQLITE_BUSY_TIMEOUT_MS`` (not imported: that module loads SQLAlchemy)
BUSY_TIMEOUT_MS = 5_000
_PREFIXES = ("sqlite:///", "sqlite+pysqlite:///")
# Column names and placeholders only: every value is a bound parameter.
_SELECT = f"SELECT {', '.join(TRADE_COLUMNS)} FROM trades"  # noqa: S608
_ORDER = " ORDER BY close_at_us, broker_trade_id, close_tx_id"
_LEDGER_ID_KEY = (
    "ledger_id"  # ``_schema.LEDGER_ID_KEY`` (not imported: that module loads SQLAlchemy)
)
# ``SqlLedger.read_committed``'s statement, as text: the head and the ledger's identity from the
# same snapshot as the rows (a LEFT JOIN from the one-row head, so it comes back with no row);
# ``+trades.account`` keeps SQLite on ix_trades_seq (see there).
_COMMITTED = (
    "SELECT head.head, head.ledger_id, "  # noqa: S608 - column names only; values are bound
    + ", ".join(f"trades.{c}" for c in ("seq", *TRADE_COLUMNS))
    + " FROM (SELECT coalesce(max(seq), 0) AS head,"
    " (SELECT value FROM meta WHERE key = ?) AS ledger_id FROM trades) AS head"
    " LEFT OUTER JOIN trades ON trades.seq > ? AND +trades.account = ?{since}"
    " ORDER BY trades.seq"
)


def open_reader(
    url: str, *, sqlite_busy_timeout_ms: int = BUSY_TIMEOUT_MS, account: str = ""
) -> SqliteReader | SqlLedger:
    """A ``SqliteReader`` on a ready SQLite ledger at ``url``, else ``SqlLedger.open(url)``;
    either reads ``account``'s rows only (``SqlLedger.open``'s ``account``).

    Raises:
        LedgerError: as ``SqlLedger.open`` (bad URL, unreachable database, newer schema, a
            malformed account key).
    """
    problem = account_problem(account)
    if problem is not None:
        raise LedgerError(f"ledger: account {problem}")
    reader = SqliteReader.try_open(url, busy_timeout_ms=sqlite_busy_timeout_ms, account=account)
    if reader is not None:
        return reader
    from autolearn.ledger.sql import SqlLedger

    return SqlLedger.open(url, sqlite_busy_timeout_ms=sqlite_busy_timeout_ms, account=account)


class SqliteReader:
    """``Ledger`` whose hot reads use ``sqlite3``; construct with :meth:`try_open`."""

    def __init__(
        self, conn: sqlite3.Connection, url: str, *, busy_timeout_ms: int, account: str = ""
    ) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._url = url
        self.account = account  # as SqlLedger's: every read filters on it
        self._busy_timeout_ms = busy_timeout_ms
        self._full: SqlLedger | None = None
        self._file_id = _file_id(url.removeprefix("sqlite:///"))
        # (PRAGMA data_version, head, ledger id) of the last read_committed: while the version
        # is unchanged no other connection committed, so a read past that head finds nothing.
        self._last_commit: tuple[int, int, str] | None = None

    @classmethod
    def try_open(
        cls, url: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, account: str = ""
    ) -> SqliteReader | None:
        """The reader of ``url``, or None when ``url`` is not a ready SQLite ledger file."""
        path = _sqlite_file(url)
        if path is None:
            return None
        try:
            conn = _connect(path, busy_timeout_ms)
        except sqlite3.Error:
            return None  # SqlLedger.open says why, in its words
        try:
            ready = _schema_is_current(conn)
        except sqlite3.Error:
            ready = False
        if not ready:
            conn.close()
            return None
        return cls(conn, f"sqlite:///{path}", busy_timeout_ms=busy_timeout_ms, account=account)

    def close(self) -> None:
        """Close the connection; a later read opens a new one (as ``SqlLedger`` after close)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._full is not None:
            self._full.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        scope = f", account={self.account!r}" if self.account else ""
        return f"SqliteReader({self._url!r}{scope})"

    @property
    def url(self) -> str:
        return self._url

    # -- the hot reads ---------------------------------------------------------------------------

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
        where, args = self._window(closed_since, closed_until)
        for column, value in (
            ("pocket", pocket),
            ("strategy", strategy),
            ("instrument", instrument),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        return self._trades("trades", where, args)

    def trades_in_pockets(
        self,
        pockets: Collection[str],
        *,
        closed_since: datetime | None = None,
        closed_until: datetime | None = None,
    ) -> list[Trade]:
        """``trades`` of the window restricted to ``pockets`` in SQL (``PocketFiltered``; see
        ``SqlLedger.trades_in_pockets`` for the ``+pocket``)."""
        if not pockets:
            return []
        where, args = self._window(closed_since, closed_until)
        names = sorted(pockets)
        where.append(f"+pocket IN ({', '.join('?' * len(names))})")
        return self._trades("trades", where, [*args, *names])

    def last_close_at(self) -> datetime | None:
        with self._translate("last_close_at"):
            (value,) = (
                self._db()
                .execute("SELECT max(close_at_us) FROM trades WHERE account = ?", (self.account,))
                .fetchone()
            )
        return None if value is None else from_epoch_us(int(value))

    def count_trades(self) -> int:
        with self._translate("count_trades"):
            (value,) = (
                self._db()
                .execute("SELECT count(*) FROM trades WHERE account = ?", (self.account,))
                .fetchone()
            )
        return int(value)

    def _window(
        self, since: datetime | None, until: datetime | None
    ) -> tuple[list[str], list[Any]]:
        where, args = _window(since, until)
        return ["account = ?", *where], [self.account, *args]

    def _trades(self, operation: str, where: list[str], args: list[Any]) -> list[Trade]:
        sql = _SELECT + (f" WHERE {' AND '.join(where)}" if where else "") + _ORDER
        with self._translate(operation):
            rows = self._db().execute(sql, args).fetchall()
        try:
            return [trade_from_values(row) for row in rows]
        except LedgerError as exc:  # an undecodable row (_rows.py): say which ledger
            raise LedgerError(f"ledger {self._url}: {operation} failed: {exc}") from exc

    def _db(self) -> sqlite3.Connection:
        """The connection, reopened after :meth:`close` (a closed reader must still read the
        file at its path now: the gates close and reuse theirs around a rebuilt ledger)."""
        if self._conn is None:
            path = self._url.removeprefix("sqlite:///")
            self._conn = _connect(path, self._busy_timeout_ms)
            self._file_id = _file_id(path)
            self._last_commit = None  # data_version is per connection
        return self._conn

    @contextmanager
    def _translate(self, operation: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            transient = isinstance(exc, sqlite3.OperationalError) and "locked" in detail.lower()
            kind = LedgerUnavailable if transient else LedgerError
            hint = " (transient: retry later)" if transient else ""
            raise kind(f"ledger {self._url}: {operation} failed: {detail}{hint}") from exc

    # -- the gates' refresh: commit order (``CommitOrdered``) -----------------------------------

    def is_replaced(self) -> bool:
        """True when the file was deleted or replaced since this reader opened it (as
        ``SqlLedger.is_replaced``: an open connection keeps reading the old inode)."""
        return self._file_id is not None and _file_id(self._url.removeprefix("sqlite:///")) != (
            self._file_id
        )

    def commit_head(self) -> int:
        """The highest committed ``seq`` (0 on an empty ledger)."""
        with self._translate("commit_head"):
            (value,) = self._db().execute("SELECT coalesce(max(seq), 0) FROM trades").fetchone()
        return int(value)

    def read_committed(
        self, *, after: int = 0, closed_since: datetime | None = None
    ) -> CommitBatch:
        """``SqlLedger.read_committed`` on ``sqlite3``: trades with ``seq > after`` (and
        ``close_at >= closed_since``) by ``seq``, with the head and the ledger id, one snapshot."""
        with self._translate("read_committed"):
            (version,) = self._db().execute("PRAGMA data_version").fetchone()
            last = self._last_commit
            if (
                last is not None
                and last[0] == version
                and closed_since is None
                and after >= last[1]
            ):
                return CommitBatch(last[1], [], last[2])
            args: list[Any] = [_LEDGER_ID_KEY, after, self.account]
            since = ""
            if closed_since is not None:
                since = " AND trades.close_at_us >= ?"
                args.append(to_epoch_us(closed_since))
            rows = self._db().execute(_COMMITTED.format(since=since), args).fetchall()
        try:
            trades = [
                CommittedTrade(int(r[2]), trade_from_values(r[3:]))
                for r in rows
                if r[2] is not None
            ]
        except LedgerError as exc:  # an undecodable row (_rows.py): say which ledger
            raise LedgerError(f"ledger {self._url}: read_committed failed: {exc}") from exc
        head, ledger_id = int(rows[0][0]), str(rows[0][1] or "")  # the head row always returns
        self._last_commit = (int(version), head, ledger_id)
        return CommitBatch(head, trades, ledger_id)

    # -- everything else: the full ledger, opened on first use ----------------------------------

    def full(self) -> SqlLedger:
        """The ``SqlLedger`` on the same file (opened once, closed with this reader)."""
        if self._full is None:
            from autolearn.ledger.sql import SqlLedger

            self._full = SqlLedger.open(
                self._url, sqlite_busy_timeout_ms=self._busy_timeout_ms, account=self.account
            )
        return self._full

    def upsert_trades(self, trades: Iterable[Trade]) -> UpsertCounts:
        return self.full().upsert_trades(trades)

    def upsert_shadow_signals(self, signals: Iterable[ShadowSignal]) -> UpsertCounts:
        return self.full().upsert_shadow_signals(signals)

    def upsert_signals(self, signals: Iterable[EntrySignal]) -> UpsertCounts:
        return self.full().upsert_signals(signals)

    def trades_after(self, watermark: Watermark | None, limit: int | None = None) -> list[Trade]:
        return self.full().trades_after(watermark, limit)

    def shadow_signals(
        self,
        *,
        since: datetime | None = None,
        pocket: str | None = None,
        strategy: str | None = None,
    ) -> list[ShadowSignal]:
        """Shadow signals with ``at >= since`` matching the filters, ordered by (at, signal_id)."""
        where, args = _filters(
            ("account =", self.account),
            ("at_us >=", since),
            ("pocket =", pocket),
            ("strategy =", strategy),
        )
        sql = f"SELECT * FROM shadow_signals{where} ORDER BY at_us, signal_id"  # noqa: S608
        return self._rows("shadow_signals", sql, args, shadow_from_row)

    def signals(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        instrument: str | None = None,
        pocket: str | None = None,
        strategy: str | None = None,
    ) -> list[EntrySignal]:
        """Signal-log rows with ``since <= at < until`` matching every filter, by (at, id)."""
        where, args = _filters(
            ("account =", self.account),
            ("at_us >=", since),
            ("at_us <", until),
            ("instrument =", instrument),
            ("pocket =", pocket),
            ("strategy =", strategy),
        )
        sql = f"SELECT * FROM signals{where} ORDER BY at_us, signal_id"  # noqa: S608
        return self._rows("signals", sql, args, signal_from_row)

    def _rows(
        self, operation: str, sql: str, args: list[Any], convert: Callable[[Any], _T]
    ) -> list[_T]:
        """``convert`` of each row of ``sql`` as a mapping (what ``_rows``' decoders read)."""
        with self._translate(operation):
            cursor = self._db().execute(sql, args)
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        try:
            return [convert(dict(zip(names, row, strict=True))) for row in rows]
        except LedgerError as exc:  # an undecodable row (_rows.py): say which ledger
            raise LedgerError(f"ledger {self._url}: {operation} failed: {exc}") from exc

    def upsert_candles(self, candles: Candles, *, granularity: str = "M1") -> UpsertCounts:
        return self.full().upsert_candles(candles, granularity=granularity)

    def candles(
        self,
        instrument: str,
        *,
        granularity: str = "M1",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Candles:
        return self.full().candles(instrument, granularity=granularity, since=since, until=until)

    def get_cursor(self, name: str) -> str | None:
        return self.full().get_cursor(name)

    def set_cursor(self, name: str, value: str) -> None:
        self.full().set_cursor(name, value)


def _filters(*conditions: tuple[str, object]) -> tuple[str, list[Any]]:
    """`` WHERE a >= ? AND b = ?`` of the conditions whose value is not None, and the values
    (datetimes as epoch microseconds, the ledger's storage form)."""
    where: list[str] = []
    args: list[Any] = []
    for condition, value in conditions:
        if value is not None:
            where.append(f"{condition} ?")
            args.append(to_epoch_us(value) if isinstance(value, datetime) else value)
    return (f" WHERE {' AND '.join(where)}" if where else ""), args


def _window(since: datetime | None, until: datetime | None) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if since is not None:
        where.append("close_at_us >= ?")
        args.append(to_epoch_us(since))
    if until is not None:
        where.append("close_at_us < ?")
        args.append(to_epoch_us(until))
    return where, args


def _sqlite_file(url: str) -> str | None:
    """The path of an existing SQLite file ``url`` names simply, else None (SqlLedger's case).

    Simply: ``sqlite:///relative``, ``sqlite:////absolute`` or a bare path, with no query,
    percent-escape or ``~`` for SQLAlchemy to interpret differently than ``sqlite3`` would.
    """
    raw = url.strip()
    path = next((raw[len(p) :] for p in _PREFIXES if raw.startswith(p)), None)
    if path is None and "://" not in raw:
        path = raw
    if not path or path == ":memory:" or any(ch in path for ch in "?%~"):
        return None
    return path if os.path.isfile(path) else None


def _connect(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """Autocommit (each read its own snapshot) and usable from any thread: the gates are
    shared by a bot's threads and open their ledger in whichever refreshes first; their lock
    serialises the calls (``SqlLedger``'s pool allowed the same)."""
    return sqlite3.connect(
        path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
    )


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _schema_is_current(conn: sqlite3.Connection) -> bool:
    """``meta.schema_version`` and the alembic stamp are this code's (no table: not ready)."""
    stamp = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    revisions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    return stamp == (str(SCHEMA_VERSION),) and revisions == [(f"v{SCHEMA_VERSION}",)]
