"""v2: the signal log (``signals``) and the candle store (``candles``); shadow signals copied in.

A frozen copy, never edited (``_schema.py`` describes the newest version). Every existing shadow
signal becomes a ``signals`` row that was not taken, its reason kept in ``not_taken``: the signal
log is then the one place that says what the bot saw, and ``shadow_signals`` stays for the
outcomes the policy's shadow unblock reads.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "v2"
down_revision = "v1"
branch_labels = None
depends_on = None

_Key = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "signals",
        sa.Column("signal_id", _Key, primary_key=True),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("instrument", _Key, nullable=False),
        sa.Column("pocket", _Key, nullable=False),
        sa.Column("strategy", _Key, nullable=False),
        sa.Column("side", sa.Text, nullable=False),
        sa.Column("price", sa.Double, nullable=False),
        sa.Column("sl_pips", sa.Double, nullable=True),
        sa.Column("tp_pips", sa.Double, nullable=True),
        sa.Column("timeout_s", sa.Double, nullable=True),
        sa.Column("scores", sa.Text, nullable=False),
        sa.Column("unit_id", sa.Text, nullable=False),
        sa.Column("taken", sa.Boolean, nullable=False),
        sa.Column("not_taken", sa.Text, nullable=False),
        sa.Column("broker_trade_id", _Key, nullable=False),
        sa.Column("config_version", sa.Text, nullable=False),
        sa.Column("extra", sa.Text, nullable=False),
        sa.Column("ingested_at_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_signals_instrument_at", "signals", ["instrument", "at_us", "signal_id"])
    op.create_index("ix_signals_strategy_at", "signals", ["strategy", "at_us"])
    op.create_table(
        "candles",
        sa.Column("instrument", _Key, nullable=False),
        sa.Column("granularity", _Key, nullable=False),
        sa.Column("time_us", sa.BigInteger, nullable=False),
        sa.Column("open", sa.Double, nullable=False),
        sa.Column("high", sa.Double, nullable=False),
        sa.Column("low", sa.Double, nullable=False),
        sa.Column("close", sa.Double, nullable=False),
        sa.Column("spread_pips", sa.Double, nullable=True),
        sa.Column("volume", sa.Double, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("ingested_at_us", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("instrument", "granularity", "time_us", name="pk_candles"),
    )
    # Shadow signals are signals that were not taken: copy them in (scores unknown: '{}').
    op.execute(
        "INSERT INTO signals (signal_id, at_us, instrument, pocket, strategy, side, price, "
        "sl_pips, tp_pips, timeout_s, scores, unit_id, taken, not_taken, broker_trade_id, "
        "config_version, extra, ingested_at_us) "
        "SELECT signal_id, at_us, instrument, pocket, strategy, side, price, sl_pips, tp_pips, "
        "NULL, '{}', '', false, CASE WHEN reason = '' THEN 'shadow' ELSE reason END, '', "
        "config_version, extra, ingested_at_us FROM shadow_signals"
    )
