"""v4: ``account``, the bot's key, in the identity of every bot-written table (issue 19 item 2).

A frozen copy, never edited (``_schema.py`` describes the newest version). OANDA's trade and
transaction ids are per account: with two bots on one ledger, bot B's trade 4400 overwrote bot
A's (``inserted 10, updated 10``, no error), and A's gates and policy read B's trades. Every row
written before v4 belongs to the ledger's one bot, ``account = ''``; ``seq`` (the commit order)
is kept as it is, so a reader resuming after its highest ``seq`` misses nothing across the
upgrade. Candles are the market's, the same for every bot: untouched.

PostgreSQL changes the tables in place (a column, the primary key, the indexes: no copy of the
rows). SQLite cannot change a primary key, so each table is rebuilt: a new table of the v4
shape, the rows copied in one statement, the old one dropped and the new one renamed (what
alembic's batch mode does, spelt out so the result is the exact shape ``create_all`` makes).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "v4"
down_revision = "v3"
branch_labels = None
depends_on = None

_Key = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")

# table -> (its primary key's PostgreSQL name, the v4 key, the v4 indexes: name -> columns)
_TABLES: dict[str, tuple[str, tuple[str, ...], dict[str, tuple[str, ...]]]] = {
    "trades": (
        "pk_trades",
        ("account", "broker_trade_id", "close_tx_id"),
        {
            "ix_trades_order": ("account", "close_at_us", "broker_trade_id", "close_tx_id"),
            "ix_trades_pocket_strategy": ("account", "pocket", "strategy", "close_at_us"),
        },
    ),
    "shadow_signals": (
        "shadow_signals_pkey",
        ("account", "signal_id"),
        {"ix_shadow_signals_at": ("account", "at_us", "signal_id")},
    ),
    "signals": (
        "signals_pkey",
        ("account", "signal_id"),
        {
            "ix_signals_instrument_at": ("account", "instrument", "at_us", "signal_id"),
            "ix_signals_strategy_at": ("account", "strategy", "at_us"),
        },
    ),
    "cursors": ("cursors_pkey", ("account", "name"), {}),
}


def upgrade() -> None:
    bind = op.get_bind()
    for table, (pk_name, key, indexes) in _TABLES.items():
        if bind.dialect.name == "postgresql":
            _in_place(table, pk_name, key, indexes)
        else:
            _rebuilt(bind, table, key, indexes)


def _in_place(
    table: str, pk_name: str, key: tuple[str, ...], indexes: dict[str, tuple[str, ...]]
) -> None:
    op.add_column(table, sa.Column("account", _Key, nullable=False, server_default=""))
    op.drop_constraint(pk_name, table, type_="primary")
    op.create_primary_key(pk_name, table, list(key))
    for name, columns in indexes.items():
        op.drop_index(name, table_name=table)
        op.create_index(name, table, list(columns))


def _rebuilt(
    bind: sa.Connection, table: str, key: tuple[str, ...], indexes: dict[str, tuple[str, ...]]
) -> None:
    old = sa.Table(table, sa.MetaData(), autoload_with=bind)
    names = [c.name for c in old.columns]
    new_name = f"{table}__v4"
    columns = [
        sa.Column(c.name, c.type, nullable=c.nullable, server_default=c.server_default)
        for c in old.columns
    ]
    pk_name = "pk_trades" if table == "trades" else None
    new = sa.Table(
        new_name,
        sa.MetaData(),
        *columns,
        sa.Column("account", _Key, nullable=False, server_default=""),
        sa.PrimaryKeyConstraint(*key, name=pk_name),
    )
    new.create(bind)
    listed = ", ".join(f'"{n}"' for n in names)
    # only reflected column names are interpolated (quoted); no value is
    op.execute(f'INSERT INTO "{new_name}" ({listed}) SELECT {listed} FROM "{table}"')  # noqa: S608
    op.drop_table(table)  # its indexes go with it, freeing their names
    op.rename_table(new_name, table)
    for name, columns_of in indexes.items():
        op.create_index(name, table, list(columns_of))
    if table == "trades":
        op.create_index("ix_trades_seq", table, ["seq"], unique=True)
