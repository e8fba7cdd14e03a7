"""Baseline: the ledger schema as it was when migrations were adopted (schema version 1).

A frozen copy, never edited: ``_schema.py`` describes the newest version, this file what v1 was.
A new ledger is created from ``_schema.py`` and stamped directly; this revision runs only when a
ledger is built up from nothing through the chain (the tests check both ways agree).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "v1"
down_revision = None
branch_labels = None
depends_on = None

_Key = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")


def upgrade() -> None:
    meta = op.create_table(
        "meta",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "trades",
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
    )
    op.create_index("ix_trades_order", "trades", ["close_at_us", "broker_trade_id", "close_tx_id"])
    op.create_index("ix_trades_pocket_strategy", "trades", ["pocket", "strategy", "close_at_us"])
    op.create_table(
        "shadow_signals",
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
        sa.Column("extra", sa.Text, nullable=False),
        sa.Column("ingested_at_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_shadow_signals_at", "shadow_signals", ["at_us", "signal_id"])
    op.create_table(
        "cursors",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(meta, [{"key": "schema_version", "value": "1"}])
