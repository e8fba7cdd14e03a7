"""The trade ledger: the ``Ledger`` seam, its SQL implementation, and the bot-facing writer.

Re-exports only; the contract lives in ``_base.py`` and the implementation in ``sql.py``.
"""

from __future__ import annotations

from autolearn.ledger._base import Ledger, UpsertCounts, Watermark
from autolearn.ledger.sql import SCHEMA_VERSION, LedgerSummary, SqlLedger, TradeWriter

__all__ = [
    "SCHEMA_VERSION",
    "Ledger",
    "LedgerSummary",
    "SqlLedger",
    "TradeWriter",
    "UpsertCounts",
    "Watermark",
]
