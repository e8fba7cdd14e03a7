"""Alembic's environment: migrate the connection ``SqlLedger`` passes, in its transaction."""

from __future__ import annotations

from alembic import context

from autolearn.ledger._schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "autolearn migrates a ledger when it opens it (SqlLedger.open / TradeWriter.open); "
        "the alembic command line is only for writing a new revision"
    )
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
