"""``autolearn ingest --oanda``: pull the v20 transactions feed into the ledger (resumable)."""

from __future__ import annotations

from autolearn.adapters.logs import emit_json, redact
from autolearn.cli._common import console, utcnow

__all__ = ["ingest_oanda"]


def ingest_oanda(
    ledger_url: str, base_url: str, token: str, account_id: str, *, since_id: str = "0"
) -> None:
    """Import every fill since the stored cursor; print the report and one JSON record."""
    from autolearn.cli._common import settings
    from autolearn.ledger.limits import load_trade_limits
    from autolearn.ledger.sql import SqlLedger
    from autolearn.oanda.client import V20Client
    from autolearn.oanda.transactions import ingest_transactions

    limits = load_trade_limits(settings().bot_root)
    ledger = SqlLedger.open(ledger_url, limits=limits, account=settings().account)
    try:
        with V20Client(token=token, base_url=base_url) as client:
            report = ingest_transactions(
                client,
                account_id,
                ledger,
                now=utcnow(),
                initial_since_id=since_id,
                limits=limits,
            )
    finally:
        ledger.close()
    console.print(redact(report.format()))  # rejected reasons quote broker field values
    emit_json({"event": "oanda_ingest_finished", "account": account_id, "report": report.format()})
