"""v3: ``trades.seq``, the commit order incremental readers resume from (issue 19 item 1).

A frozen copy, never edited (``_schema.py`` describes the newest version). Existing trades are
numbered 1..n in the ledger order ``(close_at, broker_trade_id, close_tx_id)`` (their commit
order is unknown, and a reader starting on a migrated ledger reads them all anyway); from then
on every insert or update takes the next value under the table's write lock.

The ledger also gets its identity (``meta.ledger_id``, random): a reader holding a ``seq`` of
this ledger recognises a rebuilt one under the same path. Only a column, a unique index on it
and a ``meta`` row: the trade key is untouched, so an account key (a v4)
adds its column to the key and the readers' filters without renumbering ``seq``.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "v3"
down_revision = "v2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "trades",
        sa.Column("seq", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    )
    # UPDATE ... FROM: PostgreSQL, and SQLite >= 3.33; one pass, not a subquery per row.
    op.execute(
        "UPDATE trades SET seq = numbered.n FROM ("
        "SELECT broker_trade_id AS b, close_tx_id AS c, row_number() OVER ("
        "ORDER BY close_at_us, broker_trade_id, close_tx_id) AS n FROM trades) AS numbered "
        "WHERE trades.broker_trade_id = numbered.b AND trades.close_tx_id = numbered.c"
    )
    op.create_index("ix_trades_seq", "trades", ["seq"], unique=True)
    meta = sa.table("meta", sa.column("key", sa.Text), sa.column("value", sa.Text))
    op.bulk_insert(meta, [{"key": "ledger_id", "value": uuid.uuid4().hex}])
