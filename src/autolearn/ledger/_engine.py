"""Engine construction for the ledger: URL parsing, SQLite pragmas and locking, dialect helpers.

SQLite is opened in WAL mode with a busy timeout, and every write transaction starts with
``BEGIN IMMEDIATE`` (connections marked ``autolearn_write``) so an upsert's compare-then-write
is atomic. PostgreSQL goes through psycopg 3 with pre-ping and a 10 s connect timeout.

An adapter: it knows databases, not trades, and must not import the schema or the learning
loops. No password may leave it, neither in a message nor in SQLAlchemy's parse error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import StaticPool

from autolearn.errors import LedgerError

__all__ = ["SQLITE_BUSY_TIMEOUT_MS", "dialect_insert", "is_locked", "make_engine"]

SQLITE_BUSY_TIMEOUT_MS = 5_000
_SQLITE_SUFFIXES = frozenset({".db", ".sqlite", ".sqlite3"})


def make_engine(url: str, busy_timeout_ms: int) -> tuple[Engine, str]:
    """The engine for ``url`` and the URL as shown in errors (password redacted)."""
    raw = url.strip()
    if "://" not in raw:
        if not raw:
            raise LedgerError("ledger URL is empty; pass sqlite:///path or postgresql+psycopg://")
        _check_plain_path(raw)
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
        # A server that stopped answering must not hold the bot's record_trade for the minutes
        # of a TCP timeout: TradeWriter retries, then spools (issue 19 item 6).
        connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": 10}
        return sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args), shown
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
        _prepare_sqlite_file(Path(database).expanduser(), shown)
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


def _check_plain_path(raw: str) -> None:
    """A bare path must be an existing file or end like a SQLite file (a typo is not a URL)."""
    path = Path(raw).expanduser()
    if path.suffix.lower() in _SQLITE_SUFFIXES or path.is_file():
        return
    raise LedgerError(
        f"ledger {raw!r} is neither a URL nor a SQLite file path (no such file, and it does not "
        f"end in {', '.join(sorted(_SQLITE_SUFFIXES))}); nothing was created. Pass "
        "sqlite:///path/to/ledger.db or postgresql+psycopg://user@host/db"
    )


def _prepare_sqlite_file(path: Path, shown: str) -> None:
    """Create the file's missing directories (0700) and the file itself (0600) if needed.

    Never a top-level directory: ``sqlite:////nonexistent/dir/x.db`` is a typo, and creating
    ``/nonexistent`` as root would hide it. The file is made 0600 before SQLite opens it (its
    ``-wal``/``-shm`` files take the same mode): a ledger holds positions and P/L.
    """
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    if missing and missing[-1].parent == missing[-1].parent.parent:
        raise LedgerError(
            f"ledger {shown}: {missing[-1]} does not exist and autolearn never creates a "
            "top-level directory (a typo in the URL?); create it or fix the URL"
        )
    try:
        for directory in reversed(missing):
            directory.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise LedgerError(f"ledger {shown}: cannot create its directory: {exc}") from exc
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    except FileExistsError:
        return
    except OSError as exc:
        raise LedgerError(f"ledger {shown}: cannot create it: {exc.strerror}") from exc


def dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT (both have ``on_conflict_do_update``/``excluded``)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def is_locked(exc: LedgerError) -> bool:
    """True when ``exc`` wraps SQLite's "database is locked" (another writer held the lock)."""
    cause = exc.__cause__
    return isinstance(cause, OperationalError) and "locked" in str(cause.orig).lower()
