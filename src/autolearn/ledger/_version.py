"""``SCHEMA_VERSION``: the ledger schema this code reads and writes (``_schema.py`` re-exports it).

In a module of its own so a reader that checks it (``sqlite_reader``) needs no SQLAlchemy.
"""

from __future__ import annotations

__all__ = ["SCHEMA_VERSION"]

SCHEMA_VERSION = 5
