"""Bring a ledger to ``SCHEMA_VERSION``: create and stamp a new one, stamp and upgrade an old one.

Runs inside the caller's write transaction (under PostgreSQL's advisory lock, SQLite's
``BEGIN IMMEDIATE``), so concurrent first opens migrate once and the others find it ready.

- new ledger: the current tables and the head revision, directly (no alembic needed: a bare
  worker install can create its ledger);
- ledger from before alembic (``meta.schema_version`` only): stamped at that revision;
- behind the head: ``alembic upgrade head`` over ``ledger/migrations/`` (needs alembic, in the
  ``cli`` extra), then ``meta.schema_version`` follows;
- newer than this code: refused by the readers in ``_schema.py`` before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from autolearn.errors import LedgerError
from autolearn.ledger._schema import (
    SCHEMA_VERSION,
    create_schema,
    head_revision,
    meta_table,
    metadata,
    stamp_revision,
    stored_revision,
    stored_version,
)

__all__ = ["MIGRATIONS_DIR", "migrate", "run_alembic_upgrade"]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def migrate(conn: Connection, *, url_for_errors: str) -> None:
    """Bring the ledger on ``conn`` to ``SCHEMA_VERSION`` (inside the caller's write)."""
    version = stored_version(conn, url_for_errors=url_for_errors)
    if version is None:
        create_schema(conn)
        return
    revision = stored_revision(conn, url_for_errors=url_for_errors)
    if revision is None:  # created before alembic: meta says which revision its tables are
        revision = f"v{version}"
        stamp_revision(conn, revision)
    if revision != head_revision():
        run_alembic_upgrade(conn, url_for_errors=url_for_errors, current=revision)
        conn.execute(
            sa.update(meta_table)
            .where(meta_table.c.key == "schema_version")
            .values(value=str(SCHEMA_VERSION))
        )
    metadata.create_all(conn, checkfirst=True)  # tables an interrupted first creation missed


def run_alembic_upgrade(conn: Connection, *, url_for_errors: str, current: str) -> None:
    """``alembic upgrade head`` on ``conn`` (its transaction is the caller's)."""
    try:
        from alembic import command
        from alembic.config import Config
    except ModuleNotFoundError as exc:
        raise LedgerError(
            f"ledger {url_for_errors}: at schema revision {current}, this autolearn needs "
            f"{head_revision()}; migrating needs alembic: pip install 'autolearn[cli]' here, or "
            "open the ledger once from the control plane (any autolearn command that reads it)"
        ) from exc
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    command.upgrade(config, "head")
