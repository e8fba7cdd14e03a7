"""``LedgerSummary``: what a ledger holds, as counts and totals for people to read.

A plain value (filled by ``SqlLedger.summary``) and its terminal rendering. It must not query a
database nor import SQLAlchemy: the query belongs to ``SqlLedger``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["LedgerSummary"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerSummary:
    """What the ledger holds, for people (``make demo``, ``autolearn status``)."""

    trades: int
    shadow_signals: int
    by_pocket: dict[str, int] = field(default_factory=dict)
    by_strategy: dict[str, int] = field(default_factory=dict)
    by_broker_close_reason: dict[str, int] = field(default_factory=dict)
    by_exit_reason: dict[str, int] = field(default_factory=dict)
    first_close_at: datetime | None = None
    last_close_at: datetime | None = None
    total_pl_pips: float = 0.0
    total_pl_account: float = 0.0

    def format(self) -> str:
        """A few lines for a terminal."""
        span = (
            f"{self.first_close_at.isoformat()} .. {self.last_close_at.isoformat()}"
            if self.first_close_at and self.last_close_at
            else "empty"
        )
        lines = [
            f"trades: {self.trades} (closes {span}); shadow signals: {self.shadow_signals}",
            f"total: {self.total_pl_pips:+.1f} pips, {self.total_pl_account:+.2f} account ccy",
        ]
        for title, counts in (
            ("pocket", self.by_pocket),
            ("strategy", self.by_strategy),
            ("broker close reason", self.by_broker_close_reason),
            ("exit reason", self.by_exit_reason),
        ):
            shown = ", ".join(f"{k or '(empty)'} {v}" for k, v in counts.items())
            lines.append(f"by {title}: {shown or '-'}")
        return "\n".join(lines)
