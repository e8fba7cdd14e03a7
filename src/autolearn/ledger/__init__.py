"""The trade ledger: the ``Ledger`` seam, its SQL implementation, and the bot-facing writer.

Re-exports only; the contract lives in ``_base.py`` and the implementation in ``sql.py``.
The SQL names load on first use (PEP 562): ``autolearn.ledger._base`` (every mechanism's seam)
and ``autolearn.ledger._rows`` are imported without SQLAlchemy, which costs a worker or a
``tune`` run ~0.15 s CPU and ~20 MB before it opens anything (issue 16).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autolearn.ledger._base import (
    CommitBatch,
    CommitOrdered,
    CommittedTrade,
    Ledger,
    PocketFiltered,
    UpsertCounts,
    Watermark,
)

if TYPE_CHECKING:
    from autolearn.ledger.sql import SCHEMA_VERSION, LedgerSummary, SqlLedger, TradeWriter

__all__ = [
    "SCHEMA_VERSION",
    "CommitBatch",
    "CommitOrdered",
    "CommittedTrade",
    "Ledger",
    "LedgerSummary",
    "PocketFiltered",
    "SqlLedger",
    "TradeWriter",
    "UpsertCounts",
    "Watermark",
]

_FROM_SQL = frozenset({"SCHEMA_VERSION", "LedgerSummary", "SqlLedger", "TradeWriter"})


def __getattr__(name: str) -> Any:
    if name in _FROM_SQL:
        from autolearn.ledger import sql

        return getattr(sql, name)
    raise AttributeError(f"module 'autolearn.ledger' has no attribute {name!r}")
