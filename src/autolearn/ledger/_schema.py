"""The ledger's SQL schema: tables, indexes, ``schema_version``, and creating / checking it.

Storage decisions (original-system.md 2.1, 3.6): times are BigInteger epoch microseconds
(``*_at_us``), never strings; trades are keyed by ``(broker_trade_id, close_tx_id)``, never by a
local row id; text key columns use the byte ("C") collation on PostgreSQL so both backends and
Python sort identically; the ``meta`` table holds ``schema_version`` and a different one is
refused before anything is touched. v3: ``trades.seq`` is the commit order readers resume from
(never a key: a restore or a re-delivery may renumber it, the key stays). v4: ``account``, the
bot's key, leads the identity of every bot-written table (trades, shadow signals, the signal
log, cursors): OANDA ids are per account, so two bots on one ledger used to overwrite each
other's trades. Candles are the market's, the same for every bot: they have no account.
v5: the shared state of several hosts (``state_docs``, ``state_records``, ``state_hosts``; see
``adapters/shared_state.py``), in the ledger's database so one migration chain covers both.

Deployed ledgers exist: this module must not change a table, column or index without raising
``SCHEMA_VERSION`` and shipping a migration (``ledger/migrations/``, alembic; README "Ledger
schema migrations"). It defines and checks the schema only; it opens no engine and manages no
transaction (the caller passes a connection). Migrating lives in ``_migrate.py``.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from autolearn.errors import LedgerError
from autolearn.ledger._engine import dialect_insert
from autolearn.ledger._version import SCHEMA_VERSION

__all__ = [
    "CANDLE_KEY",
    "COMMIT_ORDERED",
    "LEDGER_ID_KEY",
    "NOT_CONTENT",
    "SCHEMA_VERSION",
    "SHADOW_KEY",
    "SIGNAL_KEY",
    "TRADE_KEY",
    "alembic_version_table",
    "candles_table",
    "create_schema",
    "cursors_table",
    "head_revision",
    "meta_table",
    "metadata",
    "new_ledger_id",
    "schema_ready",
    "shadow_table",
    "signals_table",
    "stamp_revision",
    "state_docs_table",
    "state_hosts_table",
    "state_records_table",
    "stored_revision",
    "stored_version",
    "trades_table",
]

# SCHEMA_VERSION (``_version.py``: the SQLite fast reader checks it without SQLAlchemy)

# Byte-order collation on PostgreSQL so ORDER BY and watermark compares match SQLite and Python.
_Key = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")

metadata = sa.MetaData()

meta_table = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

trades_table = sa.Table(
    "trades",
    metadata,
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
    # v3: the commit order. Every insert or update of a row gives it the next value, assigned
    # under the table's write lock (see ``SqlLedger._upsert_chunk``), so a reader resuming after
    # the highest ``seq`` it saw misses nothing, whatever the close times (issue 19 item 1).
    sa.Column("seq", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    # v4: the bot's key (``SqlLedger.open(account=...)``); '' is a ledger's one bot. Last, as
    # the migration adds it; first in the key and the indexes, as every read filters on it.
    sa.Column("account", _Key, nullable=False, server_default=""),
    sa.PrimaryKeyConstraint("account", "broker_trade_id", "close_tx_id", name="pk_trades"),
    sa.Index("ix_trades_order", "account", "close_at_us", "broker_trade_id", "close_tx_id"),
    sa.Index("ix_trades_pocket_strategy", "account", "pocket", "strategy", "close_at_us"),
    sa.Index("ix_trades_seq", "seq", unique=True),
)

shadow_table = sa.Table(
    "shadow_signals",
    metadata,
    sa.Column("signal_id", _Key, nullable=False),
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
    sa.Column("account", _Key, nullable=False, server_default=""),  # v4
    sa.PrimaryKeyConstraint("account", "signal_id"),
    sa.Index("ix_shadow_signals_at", "account", "at_us", "signal_id"),
)

# v2: every candidate entry a strategy evaluated, taken or not (issue 12's signal log). A shadow
# signal is one row here too (taken false, not_taken its reason). ``scores`` is canonical JSON of
# the named numbers entry-threshold knobs compare (registry ``score``); ``broker_trade_id`` links
# a taken signal to its trade ('' when not taken or not yet known).
signals_table = sa.Table(
    "signals",
    metadata,
    sa.Column("signal_id", _Key, nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("instrument", _Key, nullable=False),
    sa.Column("pocket", _Key, nullable=False),
    sa.Column("strategy", _Key, nullable=False),
    sa.Column("side", sa.Text, nullable=False),
    sa.Column("price", sa.Double, nullable=False),
    sa.Column("sl_pips", sa.Double, nullable=True),
    sa.Column("tp_pips", sa.Double, nullable=True),
    sa.Column("timeout_s", sa.Double, nullable=True),
    sa.Column("scores", sa.Text, nullable=False),  # canonical JSON {name: number}
    sa.Column("unit_id", sa.Text, nullable=False),
    sa.Column("taken", sa.Boolean, nullable=False),
    sa.Column("not_taken", sa.Text, nullable=False),  # '' when taken: threshold, gate:..., ...
    sa.Column("broker_trade_id", _Key, nullable=False),
    sa.Column("config_version", sa.Text, nullable=False),
    sa.Column("extra", sa.Text, nullable=False),  # canonical JSON (sorted keys)
    sa.Column("ingested_at_us", sa.BigInteger, nullable=False),
    sa.Column("account", _Key, nullable=False, server_default=""),  # v4
    sa.PrimaryKeyConstraint("account", "signal_id"),
    sa.Index("ix_signals_instrument_at", "account", "instrument", "at_us", "signal_id"),
    sa.Index("ix_signals_strategy_at", "account", "strategy", "at_us"),
)

# v2: complete bars only, mid OHLC with the spread beside it; ``time_us`` is the bar's open (UTC).
candles_table = sa.Table(
    "candles",
    metadata,
    sa.Column("instrument", _Key, nullable=False),
    sa.Column("granularity", _Key, nullable=False),  # OANDA's names: M1, M5, H1, ...
    sa.Column("time_us", sa.BigInteger, nullable=False),
    sa.Column("open", sa.Double, nullable=False),
    sa.Column("high", sa.Double, nullable=False),
    sa.Column("low", sa.Double, nullable=False),
    sa.Column("close", sa.Double, nullable=False),
    sa.Column("spread_pips", sa.Double, nullable=True),  # None: the source had mid only
    sa.Column("volume", sa.Double, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("ingested_at_us", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("instrument", "granularity", "time_us", name="pk_candles"),
)

cursors_table = sa.Table(
    "cursors",
    metadata,
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at_us", sa.BigInteger, nullable=False),
    sa.Column("account", _Key, nullable=False, server_default=""),  # v4: a reconciler's cursor
    sa.PrimaryKeyConstraint("account", "name"),
)

# v5: the shared state store (``adapters/shared_state.py``, issue 19 item 3). ``scope`` is the
# account key. A document is one state file's bytes under its path in the state dir
# (``effective.json``, ``snapshots/<version>.json``, ...); ``seq`` is the scope's write order.
state_docs_table = sa.Table(
    "state_docs",
    metadata,
    sa.Column("scope", _Key, nullable=False),
    sa.Column("name", _Key, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("updated_at_us", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("scope", "name"),
    sa.Index("ix_state_docs_seq", "scope", "seq"),
)
# The append-only run history of a scope, in commit order (``seq``: assigned under the scope's
# write lock, so a host replicating "after the highest seq it holds" misses none).
state_records_table = sa.Table(
    "state_records",
    metadata,
    sa.Column("scope", _Key, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("applied_version", sa.Text, nullable=False),  # version_after if applied, else ''
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("scope", "seq"),
    sa.Index("ix_state_records_run", "scope", "run_id"),
)
# What each process of each host serves (heartbeats of ``Tuning``): ``status`` compares them.
state_hosts_table = sa.Table(
    "state_hosts",
    metadata,
    sa.Column("scope", _Key, nullable=False),
    sa.Column("host", _Key, nullable=False),
    sa.Column("process", _Key, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("seen_at_us", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("scope", "host", "process"),
)

# Alembic's own version table (its default name and shape), declared here so a bare worker
# install (no alembic) can stamp a new ledger it creates. Not part of ``metadata``.
alembic_version_table = sa.Table(
    "alembic_version",
    sa.MetaData(),
    sa.Column("version_num", sa.String(32), nullable=False),
    sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)

# The upsert keys. The account comes last here (not in the primary keys): the stored-row lookup
# filters on the first column with IN and fixes the one account of a batch with ``=``.
TRADE_KEY = ("broker_trade_id", "close_tx_id", "account")
SHADOW_KEY = ("signal_id", "account")
SIGNAL_KEY = ("signal_id", "account")
CANDLE_KEY = ("instrument", "granularity", "time_us")
# Bookkeeping columns: not part of a row's content when deciding "unchanged".
NOT_CONTENT = frozenset({"ingested_at_us", "seq"})
# v3: the ``meta`` row naming this ledger (``new_ledger_id``); a restore keeps it, a rebuild not.
LEDGER_ID_KEY = "ledger_id"
# Tables with a commit-order column (``seq``); a later table (signals, an account key in v4)
# joins by adding the column and its name here.
COMMIT_ORDERED = frozenset({"trades"})


def head_revision() -> str:
    """The alembic revision of ``SCHEMA_VERSION``: migration ``vN`` yields schema version N."""
    return f"v{SCHEMA_VERSION}"


def schema_ready(conn: Connection, *, url_for_errors: str) -> bool:
    """True when every table exists at ``SCHEMA_VERSION``, stamped; raises on a newer version."""
    inspector = sa.inspect(conn)
    if not inspector.has_table("meta"):
        return False
    stored = stored_version(conn, url_for_errors=url_for_errors)
    return (
        stored == SCHEMA_VERSION
        and stored_revision(conn, url_for_errors=url_for_errors) == head_revision()
        and all(inspector.has_table(t) for t in metadata.tables)
    )


def stored_version(conn: Connection, *, url_for_errors: str) -> int | None:
    """``meta.schema_version`` (None: no meta table or no row); raises when newer or garbage."""
    if not sa.inspect(conn).has_table("meta"):
        return None
    stored = conn.execute(
        sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")
    ).scalar_one_or_none()
    if stored is None:
        return None
    try:
        version = int(stored)
    except ValueError:
        version = -1
    if not 1 <= version <= SCHEMA_VERSION:
        raise LedgerError(
            f"ledger {url_for_errors}: schema_version {stored!r} in table meta, this autolearn "
            f"understands 1 to {SCHEMA_VERSION}; upgrade autolearn (a newer schema is never "
            "written by an older version) or point at another ledger"
        )
    return version


def stored_revision(conn: Connection, *, url_for_errors: str) -> str | None:
    """The alembic revision stamped in the ledger (None: a ledger from before alembic)."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    rows = conn.execute(sa.select(alembic_version_table.c.version_num)).scalars().all()
    known = {f"v{n}" for n in range(1, SCHEMA_VERSION + 1)}
    if len(rows) > 1 or (rows and rows[0] not in known):
        raise LedgerError(
            f"ledger {url_for_errors}: alembic revision {rows!r} in table alembic_version, this "
            f"autolearn knows {sorted(known)}; upgrade autolearn or point at another ledger"
        )
    return rows[0] if rows else None


def create_schema(conn: Connection) -> None:
    """Create the missing tables at ``SCHEMA_VERSION`` and stamp it (inside the caller's write).

    A new ledger gets the current tables directly and the head revision stamped (alembic's own
    recipe for a fresh database), so creating one needs no alembic.
    """
    metadata.create_all(conn, checkfirst=True)
    for key, value in (("schema_version", str(SCHEMA_VERSION)), (LEDGER_ID_KEY, new_ledger_id())):
        stmt = dialect_insert(conn, meta_table).values(key=key, value=value)
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))
    stamp_revision(conn, head_revision())


def new_ledger_id() -> str:
    """A fresh ledger identity (``meta.ledger_id``): a ledger rebuilt under the same path or
    URL gets another, so a reader holding a ``seq`` of the old one knows to read it again."""
    return uuid.uuid4().hex


def stamp_revision(conn: Connection, revision: str) -> None:
    """Record ``revision`` as the ledger's alembic revision (creating alembic's table)."""
    alembic_version_table.create(conn, checkfirst=True)
    conn.execute(sa.delete(alembic_version_table))
    conn.execute(sa.insert(alembic_version_table).values(version_num=revision))
