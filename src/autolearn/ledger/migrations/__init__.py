"""Alembic migrations of the ledger schema; ``versions/vN_*.py`` brings a ledger to version N.

Run on open by ``SqlLedger`` (``_migrate.py``); never by hand. README "Ledger schema migrations"
says how to add one.
"""
