"""``autolearn ingest``: QuantRabbit trades.db / CSV exports, or the OANDA v20 transactions feed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from autolearn.adapters.logs import emit_json, register_secret
from autolearn.cli._common import app, console, settings
from autolearn.errors import ConfigError, InputError, UsageError

__all__ = ["ingest_files"]


def ingest_files(paths: list[Path], ledger_url: str, *, show_rejected: int = 20) -> dict[str, int]:
    """Import every file into the ledger; print each report; return the totals."""
    from autolearn.importers.quantrabbit import import_path
    from autolearn.ledger.limits import load_trade_limits
    from autolearn.ledger.sql import SqlLedger

    totals = {"rows": 0, "accepted": 0, "rejected": 0, "inserted": 0, "updated": 0}
    limits = load_trade_limits(settings().bot_root)
    for path in paths:  # before the ledger is opened: a typo must not create one
        if not path.exists():
            raise InputError(f"{path}: no such file")
    ledger = SqlLedger.open(ledger_url, limits=limits)
    try:
        for path in paths:
            report = import_path(path, limits=limits)
            counts = ledger.upsert_trades(report.accepted)
            console.print(report.format(detail_limit=show_rejected))
            console.print(
                f"  ledger: {counts.inserted} inserted, {counts.updated} updated, "
                f"{counts.unchanged} unchanged"
            )
            totals["rows"] += report.rows_read
            totals["accepted"] += report.accepted_count
            totals["rejected"] += report.rejected_count
            totals["inserted"] += counts.inserted
            totals["updated"] += counts.updated
    finally:
        ledger.close()
    return totals


@app.command(name="ingest")
def _ingest(
    paths: Annotated[list[Path] | None, typer.Argument(help="trades.db / *.csv files")] = None,
    oanda: Annotated[bool, typer.Option(help="Pull the OANDA v20 transactions feed")] = False,
    account: Annotated[str | None, typer.Option(envvar="OANDA_ACCOUNT_ID")] = None,
    oanda_url: Annotated[
        str, typer.Option(envvar="OANDA_API_URL", help="v20 REST base URL")
    ] = "https://api-fxpractice.oanda.com",
    since_id: Annotated[
        str,
        typer.Option(help="First run only: start after this transaction id (default: all history)"),
    ] = "0",
) -> None:
    """Import closed trades into the ledger (idempotent: re-running changes nothing)."""
    current = settings()
    if oanda:
        token = os.environ.get("OANDA_TOKEN", "")
        if not token or not account:
            raise ConfigError("--oanda needs OANDA_TOKEN (env) and --account / OANDA_ACCOUNT_ID")
        register_secret(token)
        from autolearn.cli._oanda import ingest_oanda

        ingest_oanda(current.ledger_url, oanda_url, token, account, since_id=since_id)
        return
    if not paths:
        raise UsageError("give files to import, or --oanda (see `autolearn ingest --help`)")
    totals = ingest_files(list(paths), current.ledger_url)
    emit_json({"event": "ingest_finished", **totals})
