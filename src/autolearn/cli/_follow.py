"""``autolearn ingest --follow logs/trades.db``: the shell around ``importers.follow``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from autolearn.adapters.logs import emit_json
from autolearn.cli._common import console
from autolearn.settings import Settings

__all__ = ["ingest_follow"]


def ingest_follow(path: Path, current: Settings) -> dict[str, int]:
    """One follow run into the ledger; prints the report and one ``ingest_followed`` line."""
    from autolearn.adapters.state import StateStore
    from autolearn.importers.follow import run_follow
    from autolearn.ledger.limits import load_trade_limits
    from autolearn.ledger.sql import SqlLedger

    limits = load_trade_limits(current.bot_root)
    store = StateStore(current.state_dir, current.registry())
    ledger = SqlLedger.open(current.ledger_url, limits=limits, account=current.account)
    try:
        result, counts = run_follow(path, store, ledger, now=datetime.now(UTC), limits=limits)
    finally:
        ledger.close()
    console.print(result.report.format())
    totals = {
        "read": result.report.rows_read,
        "accepted": result.report.accepted_count,
        "rejected": result.report.rejected_count,
        "already": result.already,
        "late": result.late,
        "inserted": counts.inserted,
        "updated": counts.updated,
        "unchanged": counts.unchanged,
    }
    mark = result.watermark
    emit_json(
        {
            "event": "ingest_followed",
            "source": str(path),
            **totals,
            "watermark": mark.to_json()["close_at"],
            "max_rowid": mark.max_rowid,
        }
    )
    return totals
