"""The SQL trade ledger: ``Ledger`` for SQLite and PostgreSQL on SQLAlchemy Core (no ORM).

Storage decisions, each fixing a failure of the original (original-system.md 2.1, 3.6):
- times are BigInteger epoch microseconds (``*_at_us``), never strings, so a window filter is an
  integer compare (the original compared ISO text to SQLite datetimes and let in a day extra);
- trades are keyed by ``(broker_trade_id, close_tx_id)``, never by a local row id, and read in
  the order ``(close_at, broker_trade_id, close_tx_id)``; text columns use the byte ("C")
  collation on PostgreSQL so both backends and Python sort identically;
- upserts compare each incoming row with the stored one, write only what changed, and count
  inserted / updated / unchanged exactly (on SQLite the batch runs under ``BEGIN IMMEDIATE``;
  on PostgreSQL two concurrent writers may mis-count, never mis-store);
- the ``meta`` table holds ``schema_version``; a newer one is refused before anything is touched.

This module is an adapter (imperative shell): it owns no decision and must not import anything
from the learning loops. Every database failure leaves as ``LedgerError`` with the password of
the URL redacted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from autolearn.core.model import ShadowSignal, Side, Trade, TradeState
from autolearn.core.timestamps import from_epoch_us, to_epoch_us
from autolearn.errors import LedgerError
from autolearn.ledger._base import UpsertCounts, Watermark

__all__ = ["SCHEMA_VERSION", "LedgerSummary", "SqlLedger", "TradeWriter"]

SCHEMA_VERSION = 1

# Rows per statement batch: large enough for insertmanyvalues to amortise round trips, small
# enough that the key lookup (2 binds per row) stays far below SQLite's 32766-variable limit.
_CHUNK = 2_000
_SQLITE_BUSY_TIMEOUT_MS = 5_000
_INT64_MAX = 2**63 - 1

# Byte-order collation on PostgreSQL so ORDER BY and watermark compares match SQLite and Python.
_Key = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")

_metadata = sa.MetaData()

_meta = sa.Table(
    "meta",
    _metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

_trades = sa.Table(
    "trades",
    _metadata,
    sa.Column("broker_trade_id", _Key, nullable=False),
    sa.Column("close_tx_id", _Key, nullable=False),
    sa.Column("instrument", _Key, nullable=False),
    sa.Column("pocket", _Key, nullable=False),
    sa.Column("strategy", _Key, nullable=False),
    sa.Column("side", sa.Text, nullable=False),
    sa.Column("units", sa.BigInteger, nullable=False),
    sa.Column("entry_price", sa.Double, nullable=False),
    sa.Column("close_price", sa.Double, nullable=False),
    sa.Column("entry_at_us", sa.BigInteger, nullable=False),
    sa.Column("close_at_us", sa.BigInteger, nullable=False),
    sa.Column("pl_pips", sa.Double, nullable=False),
    sa.Column("pl_account", sa.Double, nullable=False),
    sa.Column("broker_close_reason", _Key, nullable=False),
    sa.Column("exit_reason", _Key, nullable=False),
    sa.Column("regime_macro", sa.Text, nullable=False),
    sa.Column("regime_micro", sa.Text, nullable=False),
    sa.Column("config_version", sa.Text, nullable=False),
    sa.Column("client_order_id", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("ingested_at_us", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("broker_trade_id", "close_tx_id", name="pk_trades"),
    sa.Index("ix_trades_order", "close_at_us", "broker_trade_id", "close_tx_id"),
    sa.Index("ix_trades_pocket_strategy", "pocket", "strategy", "close_at_us"),
)

_shadow = sa.Table(
    "shadow_signals",
    _metadata,
    sa.Column("signal_id", _Key, primary_key=True),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("instrument", _Key, nullable=False),
    sa.Column("pocket", _Key, nullable=False),
    sa.Column("strategy", _Key, nullable=False),
    sa.Column("side", sa.Text, nullable=False),
    sa.Column("price", sa.Double, nullable=False),
    sa.Column("sl_pips", sa.Double, nullable=True),
    sa.Column("tp_pips", sa.Double, nullable=True),
    sa.Column("config_version", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("outcome_pips", sa.Double, nullable=True),
    sa.Column("outcome_at_us", sa.BigInteger, nullable=True),
    sa.Column("extra", sa.Text, nullable=False),  # canonical JSON (sorted keys)
    sa.Column("ingested_at_us", sa.BigInteger, nullable=False),
    sa.Index("ix_shadow_signals_at", "at_us", "signal_id"),
)

_cursors = sa.Table(
    "cursors",
    _metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at_us", sa.BigInteger, nullable=False),
)

_TRADE_KEY = ("broker_trade_id", "close_tx_id")
_SHADOW_KEY = ("signal_id",)
# Bookkeeping columns: not part of a row's content when deciding "unchanged".
_NOT_CONTENT = frozenset({"ingested_at_us"})

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerSummary:
    """What the ledger holds, for people (``make demo``, ``autolearn status``)."""

    trades: int
    shadow_signals: int
    by_pocket: dict[str, int] = field(default_factory=dict)
    by_strategy: dict[str, int] = field(default_factory=dict)
    by_broker_close_reason: dict[str, int] = field(default_factory=dict)
    by_exit_reason: dict[str, int] = field(default_factory=dict)
    first_close_at: datetime | None = None
    last_close_at: datetime | None = None
    total_pl_pips: float = 0.0
    total_pl_account: float = 0.0

    def format(self) -> str:
        """A few lines for a terminal."""
        span = (
            f"{self.first_close_at.isoformat()} .. {self.last_close_at.isoformat()}"
            if self.first_close_at and self.last_close_at
            else "empty"
        )
        lines = [
            f"trades: {self.trades} (closes {span}); shadow signals: {self.shadow_signals}",
            f"total: {self.total_pl_pips:+.1f} pips, {self.total_pl_account:+.2f} account ccy",
        ]
        for title, counts in (
            ("pocket", self.by_pocket),
            ("strategy", self.by_strategy),
            ("broker close reason", self.by_broker_close_reason),
            ("exit reason", self.by_exit_reason),
        ):
            shown = ", ".join(f"{k or '(empty)'} {v}" for k, v in counts.items())
            lines.append(f"by {title}: {shown or '-'}")
        return "\n".join(lines)


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
    ) -> None:
        self._engine = engine
        self._url = url_for_errors
        self._clock = clock
        self._secret = secret

    # ----------------------------------------------------------------------------------------
    # Lifecycle

    @classmethod
    def open(
        cls,
        url: str,
        *,
        clock: Callable[[], datetime] | None = None,
        sqlite_busy_timeout_ms: int = _SQLITE_BUSY_TIMEOUT_MS,
    ) -> SqlLedger:
        """Open (creating if needed) the ledger at ``url``.

        Args:
            url: ``sqlite:///path``, a plain filesystem path (SQLite), or
                ``postgresql+psycopg://user:pass@host/db`` (``postgresql://`` means psycopg).
            clock: returns the current UTC time for ``ingested_at_us``/``updated_at_us``;
                injectable for tests.
            sqlite_busy_timeout_ms: how long a SQLite statement waits for another process's
                write lock before failing with "database is locked".

        Raises:
            LedgerError: bad URL, unreachable database, or a schema newer than this code.
        """
        engine, shown = _make_engine(url, sqlite_busy_timeout_ms)
        secret = engine.url.password
        ledger = cls(engine, url_for_errors=shown, clock=clock or _utc_now, secret=secret)
        try:
            ledger._prepare_schema()
        except BaseException:
            engine.dispose()
            raise
        return ledger

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqlLedger({self._url!r})"

    @property
    def url(self) -> str:
        """The URL with its password redacted."""
        return self._url

    def _prepare_schema(self) -> None:
        # Read first: opening a complete ledger must not need the write lock (the bot may be
        # writing); only a new or incomplete ledger is created, under a write transaction.
        with self._translate("read schema"), self._engine.connect() as conn:
            if self._schema_ready(conn):
                return
        with self._translate("create schema"), self._write() as conn:
            if self._schema_ready(conn):
                return  # another process created it meanwhile
            _metadata.create_all(conn, checkfirst=True)
            stmt = _insert(conn, _meta).values(key="schema_version", value=str(SCHEMA_VERSION))
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))

    def _schema_ready(self, conn: Connection) -> bool:
        """True when every table and the version exist; raises on a foreign version."""
        inspector = sa.inspect(conn)
        if not inspector.has_table("meta"):
            return False
        stored = conn.execute(
            sa.select(_meta.c.value).where(_meta.c.key == "schema_version")
        ).scalar_one_or_none()
        self._check_version(stored)
        return stored is not None and all(inspector.has_table(t) for t in _metadata.tables)

    def _check_version(self, stored: str | None) -> None:
        if stored is None:
            return
        try:
            version = int(stored)
        except ValueError:
            version = -1
        if version != SCHEMA_VERSION:
            raise LedgerError(
                f"ledger {self._url}: schema_version {stored!r} in table meta, this autolearn "
                f"understands only {SCHEMA_VERSION}; upgrade autolearn (a newer schema is never "
                "written by an older version) or point at another ledger"
            )

    # ----------------------------------------------------------------------------------------
    # Writes

    def upsert_trades(self, trades: Iterable[Trade]) -> UpsertCounts:
        """Insert new trades, update changed ones, skip identical ones; count each kind.

        Each chunk of rows is its own short transaction (so the bot's writes interleave with a
        large import); if one fails, earlier chunks stay stored and a retry is harmless.
        """
        return self._upsert(_trades, _TRADE_KEY, (_trade_row(t) for t in trades), "upsert_trades")

    def upsert_shadow_signals(self, signals: Iterable[ShadowSignal]) -> UpsertCounts:
        """As :meth:`upsert_trades`, keyed by ``signal_id``."""
        rows = (_shadow_row(s) for s in signals)
        return self._upsert(_shadow, _SHADOW_KEY, rows, "upsert_shadow_signals")

    def set_cursor(self, name: str, value: str) -> None:
        _check_text({"name": name, "value": value})
        now_us = to_epoch_us(self._clock())
        with self._translate("set_cursor"), self._write() as conn:
            stmt = _insert(conn, _cursors).values(name=name, value=value, updated_at_us=now_us)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["name"],
                    set_={"value": stmt.excluded.value, "updated_at_us": now_us},
                )
            )

    def _upsert(
        self,
        table: sa.Table,
        key: tuple[str, ...],
        rows: Iterable[dict[str, Any]],
        operation: str,
    ) -> UpsertCounts:
        total = UpsertCounts()
        with self._translate(operation):
            for chunk in _chunks(rows, _CHUNK):
                with self._write() as conn:
                    total = total + self._upsert_chunk(conn, table, key, chunk)
        return total

    def _upsert_chunk(
        self,
        conn: Connection,
        table: sa.Table,
        key: tuple[str, ...],
        chunk: list[dict[str, Any]],
    ) -> UpsertCounts:
        key_cols = [table.c[k] for k in key]
        keys = {tuple(r[k] for k in key) for r in chunk}
        stored: dict[tuple[Any, ...], dict[str, Any]] = {}
        content = [c.name for c in table.columns if c.name not in _NOT_CONTENT]
        # Look up by the leading key column only: a plain IN on the primary key's prefix is
        # index-friendly on both backends (a row-value IN is not); extra rows are ignored.
        lead = key_cols[0].in_(sorted({k[0] for k in keys}))
        for found in conn.execute(sa.select(*[table.c[n] for n in content]).where(lead)):
            mapping = dict(found._mapping)
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
            stmt = _insert(conn, table)
            stmt = stmt.on_conflict_do_update(
                index_elements=list(key),
                set_={n: stmt.excluded[n] for n in content if n not in key}
                | {"ingested_at_us": stmt.excluded.ingested_at_us},
            )
            conn.execute(stmt, list(final.values()))
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
        c = _trades.c
        query = _trade_select()
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
        return self._read("trades", query, _trade_from_row)

    def trades_after(self, watermark: Watermark | None, limit: int | None = None) -> list[Trade]:
        """Trades strictly after ``watermark`` in the ledger order (incremental readers)."""
        query = _trade_select()
        if watermark is not None:
            at, trade_id, tx_id = watermark
            at_us = to_epoch_us(at)
            c = _trades.c
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
        return self._read("trades_after", query, _trade_from_row)

    def shadow_signals(
        self,
        *,
        since: datetime | None = None,
        pocket: str | None = None,
        strategy: str | None = None,
    ) -> list[ShadowSignal]:
        """Shadow signals with ``at >= since`` matching the filters, ordered by (at, signal_id)."""
        c = _shadow.c
        query = sa.select(_shadow).order_by(c.at_us, c.signal_id)
        if since is not None:
            query = query.where(c.at_us >= to_epoch_us(since))
        if pocket is not None:
            query = query.where(c.pocket == pocket)
        if strategy is not None:
            query = query.where(c.strategy == strategy)
        return self._read("shadow_signals", query, _shadow_from_row)

    def count_trades(self) -> int:
        with self._translate("count_trades"), self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(_trades)).scalar_one())

    def last_close_at(self) -> datetime | None:
        with self._translate("last_close_at"), self._engine.connect() as conn:
            value = conn.execute(sa.select(sa.func.max(_trades.c.close_at_us))).scalar_one()
        return None if value is None else from_epoch_us(int(value))

    def get_cursor(self, name: str) -> str | None:
        query = sa.select(_cursors.c.value).where(_cursors.c.name == name)
        with self._translate("get_cursor"), self._engine.connect() as conn:
            value = conn.execute(query).scalar_one_or_none()
        return None if value is None else str(value)

    def summary(self) -> LedgerSummary:
        """Counts per pocket / strategy / close reason / exit reason, time span and totals."""
        c = _trades.c
        with self._translate("summary"), self._engine.connect() as conn:
            totals = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.min(c.close_at_us),
                    sa.func.max(c.close_at_us),
                    sa.func.coalesce(sa.func.sum(c.pl_pips), 0.0),
                    sa.func.coalesce(sa.func.sum(c.pl_account), 0.0),
                )
            ).one()
            signals = conn.execute(sa.select(sa.func.count()).select_from(_shadow)).scalar_one()

            def counts(column: sa.Column[Any]) -> dict[str, int]:
                query = (
                    sa.select(column, sa.func.count().label("n"))
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
            return [convert(row._mapping) for row in conn.execute(query)]

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
            raise LedgerError(f"ledger {self._url}: {operation} failed: {detail}") from exc
        except OSError as exc:
            raise LedgerError(f"ledger {self._url}: {operation} failed: {exc}") from exc


class TradeWriter:
    """The bot's side of the ledger: record each closed trade / shadow signal as it happens.

    Usage from the bot (one writer per process; cheap calls, safe to repeat)::

        writer = TradeWriter.open("sqlite:////var/lib/bot/ledger.db")
        writer.record_trade(trade)            # on every ORDER_FILL closing or reducing a trade
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
    def open(cls, url: str, **kwargs: Any) -> TradeWriter:
        """Open the ledger at ``url`` (see :meth:`SqlLedger.open`) and wrap it."""
        return cls(SqlLedger.open(url), **kwargs)

    @property
    def ledger(self) -> SqlLedger:
        return self._ledger

    def record_trade(self, trade: Trade) -> UpsertCounts:
        return self._retrying(lambda: self._ledger.upsert_trades([trade]))

    def record_shadow_signal(self, signal: ShadowSignal) -> UpsertCounts:
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
                if attempt == self._retries or not _is_locked(exc):
                    raise
            self._sleep(pause)
            pause *= 2
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


# --------------------------------------------------------------------------------------------
# Engine construction


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _make_engine(url: str, busy_timeout_ms: int) -> tuple[Engine, str]:
    """The engine for ``url`` and the URL as shown in errors (password redacted)."""
    raw = url.strip()
    if "://" not in raw:
        if not raw:
            raise LedgerError("ledger URL is empty; pass sqlite:///path or postgresql+psycopg://")
        raw = f"sqlite:///{raw}"
    try:
        parsed = sa.make_url(raw)
    except (ArgumentError, ValueError):
        # Neither the URL nor SQLAlchemy's message (which quotes it) may leak a password.
        scheme = raw.split("://", 1)[0]
        raise LedgerError(
            f"ledger URL with scheme {scheme!r} cannot be parsed; expected sqlite:///path or "
            "postgresql+psycopg://user:password@host:port/database"
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername == "postgresql+psycopg":
        return sa.create_engine(parsed, pool_pre_ping=True), shown
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return _sqlite_engine(parsed, shown, busy_timeout_ms), shown
    raise LedgerError(
        f"ledger URL {shown}: unsupported database {parsed.drivername!r}; "
        "use sqlite:///path or postgresql+psycopg://user@host/db"
    )


def _sqlite_engine(parsed: sa.URL, shown: str, busy_timeout_ms: int) -> Engine:
    database = parsed.database or ""
    memory = database in ("", ":memory:")
    if not memory:
        try:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(f"ledger {shown}: cannot create its directory: {exc}") from exc
    engine = sa.create_engine(parsed, poolclass=StaticPool) if memory else sa.create_engine(parsed)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # We emit BEGIN ourselves (below); sqlite3's implicit transactions would defer it.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the lock up front so the compare-then-write of an upsert is atomic.
        write = conn.get_execution_options().get("autolearn_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT (both have ``on_conflict_do_update``/``excluded``)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _is_locked(exc: LedgerError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, OperationalError) and "locked" in str(cause.orig).lower()


# --------------------------------------------------------------------------------------------
# Values <-> rows (pure)


def _chunks(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    chunk: list[_T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _check_text(fields: Mapping[str, object]) -> None:
    """Refuse text both backends cannot store identically (NUL: PostgreSQL; lone surrogates)."""
    for name, value in fields.items():
        if not isinstance(value, str) or (value.isascii() and "\x00" not in value):
            continue  # the common case, kept cheap: this runs for every field of every row
        if "\x00" in value:
            raise LedgerError(f"{name} {value!r} contains a NUL character; refusing to store it")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise LedgerError(f"{name} {value!r} is not valid Unicode text: {exc}") from exc


def _trade_row(t: Trade) -> dict[str, Any]:
    if t.units > _INT64_MAX:
        raise LedgerError(f"trade {t.broker_trade_id}: units {t.units} exceed a 64-bit integer")
    row: dict[str, Any] = {
        "broker_trade_id": t.broker_trade_id,
        "close_tx_id": t.close_tx_id,
        "instrument": t.instrument,
        "pocket": t.pocket,
        "strategy": t.strategy,
        "side": t.side.value,
        "units": t.units,
        "entry_price": float(t.entry_price),
        "close_price": float(t.close_price),
        "entry_at_us": to_epoch_us(t.entry_at),
        "close_at_us": to_epoch_us(t.close_at),
        "pl_pips": float(t.pl_pips),
        "pl_account": float(t.pl_account),
        "broker_close_reason": t.broker_close_reason,
        "exit_reason": t.exit_reason,
        "regime_macro": t.regime_macro,
        "regime_micro": t.regime_micro,
        "config_version": t.config_version,
        "client_order_id": t.client_order_id,
        "state": t.state.value,
        "source": t.source,
    }
    _check_text(row)
    return row


def _trade_select() -> sa.Select[Any]:
    c = _trades.c
    return sa.select(_trades).order_by(c.close_at_us, c.broker_trade_id, c.close_tx_id)


def _trade_from_row(r: sa.RowMapping) -> Trade:
    return Trade(
        broker_trade_id=r["broker_trade_id"],
        close_tx_id=r["close_tx_id"],
        instrument=r["instrument"],
        pocket=r["pocket"],
        strategy=r["strategy"],
        side=Side(r["side"]),
        units=int(r["units"]),
        entry_price=float(r["entry_price"]),
        close_price=float(r["close_price"]),
        entry_at=from_epoch_us(r["entry_at_us"]),
        close_at=from_epoch_us(r["close_at_us"]),
        pl_pips=float(r["pl_pips"]),
        pl_account=float(r["pl_account"]),
        broker_close_reason=r["broker_close_reason"],
        exit_reason=r["exit_reason"],
        regime_macro=r["regime_macro"],
        regime_micro=r["regime_micro"],
        config_version=r["config_version"],
        client_order_id=r["client_order_id"],
        state=TradeState(r["state"]),
        source=r["source"],
    )


def _optional_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _shadow_row(s: ShadowSignal) -> dict[str, Any]:
    row: dict[str, Any] = {
        "signal_id": s.signal_id,
        "at_us": to_epoch_us(s.at),
        "instrument": s.instrument,
        "pocket": s.pocket,
        "strategy": s.strategy,
        "side": s.side.value,
        "price": float(s.price),
        "sl_pips": _optional_float(s.sl_pips),
        "tp_pips": _optional_float(s.tp_pips),
        "config_version": s.config_version,
        "reason": s.reason,
        "outcome_pips": _optional_float(s.outcome_pips),
        "outcome_at_us": None if s.outcome_at is None else to_epoch_us(s.outcome_at),
        "extra": json.dumps(dict(s.extra), sort_keys=True, ensure_ascii=False),
    }
    _check_text(row)
    return row


def _shadow_from_row(r: sa.RowMapping) -> ShadowSignal:
    extra = json.loads(r["extra"])
    return ShadowSignal(
        signal_id=r["signal_id"],
        at=from_epoch_us(r["at_us"]),
        instrument=r["instrument"],
        pocket=r["pocket"],
        strategy=r["strategy"],
        side=Side(r["side"]),
        price=float(r["price"]),
        sl_pips=_optional_float(r["sl_pips"]),
        tp_pips=_optional_float(r["tp_pips"]),
        config_version=r["config_version"],
        reason=r["reason"],
        outcome_pips=_optional_float(r["outcome_pips"]),
        outcome_at=None if r["outcome_at_us"] is None else from_epoch_us(r["outcome_at_us"]),
        extra={str(k): str(v) for k, v in extra.items()},
    )
