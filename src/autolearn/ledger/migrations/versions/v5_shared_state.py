"""v5: the shared state store of several hosts (issue 19 item 3): three new tables, no row moved.

A frozen copy, never edited (``_schema.py`` describes the newest version). ``state_docs`` holds
each state file of an account (``effective.json``, snapshots, mechanisms, control) as bytes
under its path, ``state_records`` the append-only run history in commit order, ``state_hosts``
what each host's workers serve. The ledger's tables are untouched.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "v5"
down_revision = "v4"
branch_labels = None
depends_on = None

_Key = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "state_docs",
        sa.Column("scope", _Key, nullable=False),
        sa.Column("name", _Key, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("scope", "name"),
    )
    op.create_index("ix_state_docs_seq", "state_docs", ["scope", "seq"])
    op.create_table(
        "state_records",
        sa.Column("scope", _Key, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("applied_version", sa.Text, nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("scope", "seq"),
    )
    op.create_index("ix_state_records_run", "state_records", ["scope", "run_id"])
    op.create_table(
        "state_hosts",
        sa.Column("scope", _Key, nullable=False),
        sa.Column("host", _Key, nullable=False),
        sa.Column("process", _Key, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("seen_at_us", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("scope", "host", "process"),
    )
