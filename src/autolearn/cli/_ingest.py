"""``autolearn ingest``: QuantRabbit trades.db / CSV exports, the OANDA v20 transactions feed, or
candles (``--oanda-candles INSTRUMENT`` from v20, ``--candles FILE``) into the candle store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autolearn.adapters.logs import emit_json, register_secret
from autolearn.cli._common import app, console, settings
from autolearn.core.timestamps import TimestampError, parse_utc
from autolearn.errors import ConfigError, InputError, UsageError

__all__ = ["ingest_files"]

_PRACTICE_URL = "https://api-fxpractice.oanda.com"  # = autolearn.oanda.PRACTICE_URL (lazy import)


def ingest_files(paths: list[Path], ledger_url: str, *, show_rejected: int = 20) -> dict[str, int]:
    """Import every file into the ledger; print each report; return the totals."""
    from autolearn.core.model import Trade
    from autolearn.importers.quantrabbit import import_path
    from autolearn.ledger._base import UpsertCounts
    from autolearn.ledger.limits import load_trade_limits
    from autolearn.ledger.sql import SqlLedger

    totals = {"rows": 0, "accepted": 0, "rejected": 0, "inserted": 0, "updated": 0}
    limits = load_trade_limits(settings().bot_root)
    for path in paths:  # before the ledger is opened: a typo must not create one
        if not path.exists():
            raise InputError(f"{path}: no such file")
    ledger = SqlLedger.open(ledger_url, limits=limits, account=settings().account)
    try:
        for path in paths:
            counts = UpsertCounts()

            def upsert(chunk: list[Trade]) -> None:
                nonlocal counts
                counts = counts + ledger.upsert_trades(chunk)

            # Streamed: chunks reach the ledger while the file is read, never all of it at once.
            report = import_path(path, limits=limits, sink=upsert)
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
    account: Annotated[
        str | None, typer.Option(help="--oanda: v20 account id (env OANDA_ACCOUNT_ID)")
    ] = None,
    oanda_url: Annotated[
        str | None,
        typer.Option(help=f"v20 REST base URL (env OANDA_API_URL; default {_PRACTICE_URL})"),
    ] = None,
    since_id: Annotated[
        str,
        typer.Option(help="First run only: start after this transaction id (default: all history)"),
    ] = "0",
    oanda_candles: Annotated[
        str | None,
        typer.Option(
            metavar="INSTRUMENT", help="Pull complete v20 candles of INSTRUMENT into the store"
        ),
    ] = None,
    candles: Annotated[
        Path | None, typer.Option(help="Load a candle file (any known format) into the store")
    ] = None,
    granularity: Annotated[
        str | None, typer.Option(help="Candle granularity: M1, M5, H1... (--oanda-candles: M1)")
    ] = None,
    instrument: Annotated[
        str | None, typer.Option(help="--candles: the file's instrument (else from the file)")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="--oanda-candles, first run only: from this UTC time (default 30 days)"),
    ] = None,
    clock: Annotated[
        str | None,
        typer.Option(help="--candles: the file's clock (auto, utc, utc+2, mt5-server, ...)"),
    ] = None,
    follow: Annotated[
        Path | None,
        typer.Option(help="Import only what is new in the bot's trades.db since the last run"),
    ] = None,
) -> None:
    """Import closed trades or candles into the ledger (idempotent: a rerun changes nothing).

    OANDA_TOKEN (environment or env file; never a flag) authorises --oanda and --oanda-candles.
    """
    current = settings()
    oanda_url = current.option(oanda_url, "OANDA_API_URL") or _PRACTICE_URL
    if oanda_candles is not None or candles is not None:
        _ingest_candles(
            current.ledger_url,
            oanda_candles,
            candles,
            oanda_url,
            granularity,
            instrument,
            since,
            clock=clock,
        )
        return
    if follow is not None:
        if paths or oanda:
            raise UsageError("--follow takes the one trades.db it follows: no files, no --oanda")
        from autolearn.cli._follow import ingest_follow  # autolearn.importers.follow

        ingest_follow(follow, current)
        return
    if oanda:
        token = current.option(None, "OANDA_TOKEN") or ""
        account = current.option(account, "OANDA_ACCOUNT_ID")
        if not token or not account:
            raise ConfigError(
                "--oanda needs OANDA_TOKEN and --account / OANDA_ACCOUNT_ID (environment or "
                "env file)"
            )
        register_secret(token)
        from autolearn.cli._oanda import ingest_oanda

        ingest_oanda(current.ledger_url, oanda_url, token, account, since_id=since_id)
        return
    if not paths:
        raise UsageError("give files to import, or --oanda (see `autolearn ingest --help`)")
    totals = ingest_files(list(paths), current.ledger_url)
    emit_json({"event": "ingest_finished", **totals})


def _ingest_candles(
    ledger_url: str,
    oanda_instrument: str | None,
    path: Path | None,
    oanda_url: str,
    granularity: str | None,
    instrument: str | None,
    since: str | None,
    clock: str | None = None,
) -> None:
    """``--oanda-candles`` (same URL/token settings as ``--oanda``) or ``--candles FILE``."""
    from autolearn.cli._candles import ingest_candle_file, ingest_oanda_candles

    if oanda_instrument is not None and path is not None:
        raise UsageError("give --oanda-candles or --candles, not both")
    if oanda_instrument is None:
        if since is not None or path is None:
            raise UsageError("--since applies to --oanda-candles only")
        ingest_candle_file(
            path, ledger_url, instrument=instrument, granularity=granularity, clock=clock
        )
        return
    if clock is not None:
        raise UsageError("--clock applies to --candles only (v20 candle times are UTC)")
    token = settings().option(None, "OANDA_TOKEN") or ""
    if not token:
        raise ConfigError("--oanda-candles needs OANDA_TOKEN (environment or env file)")
    register_secret(token)
    start = None
    if since is not None:
        try:
            start = parse_utc(since)
        except TimestampError as exc:
            raise UsageError(f"--since: {exc}") from exc
    ingest_oanda_candles(
        ledger_url,
        oanda_url,
        token,
        oanda_instrument.replace("/", "_").upper(),
        granularity=granularity or "M1",
        since=start,
    )
