"""``autolearn ingest --oanda-candles`` / ``--candles``: fill the ledger's candle store.

The shell of the shell: open the ledger, run the importer (OANDA v20, resumable) or load one
candle file (any format ``load_candles`` reads), print the counts and one JSON record.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from autolearn.adapters.logs import emit_json, redact
from autolearn.cli._common import console, utcnow
from autolearn.errors import InputError, UsageError

__all__ = ["ingest_candle_file", "ingest_oanda_candles"]


def ingest_oanda_candles(
    ledger_url: str,
    base_url: str,
    token: str,
    instrument: str,
    *,
    granularity: str,
    since: datetime | None,
) -> None:
    """Store every complete bar after the cursor; print the report and one JSON record."""
    from autolearn.importers.oanda_candles import ingest_candles
    from autolearn.ledger.sql import SqlLedger
    from autolearn.oanda.client import V20Client

    _check_granularity(granularity)
    ledger = SqlLedger.open(ledger_url)
    try:
        with V20Client(token=token, base_url=base_url) as client:
            report = ingest_candles(
                client, instrument, ledger, granularity=granularity, since=since, now=utcnow()
            )
    finally:
        ledger.close()
    console.print(redact(report.format()))
    emit_json(
        {
            "event": "oanda_candles_ingested",
            "instrument": instrument,
            "granularity": granularity,
            "inserted": report.counts.inserted,
            "updated": report.counts.updated,
            "unchanged": report.counts.unchanged,
            "incomplete_skipped": report.incomplete_skipped,
            "rejected": len(report.rejected),
        }
    )


def ingest_candle_file(
    path: Path,
    ledger_url: str,
    *,
    instrument: str | None,
    granularity: str | None,
    show_rejected: int = 20,
    clock: str | None = None,
) -> None:
    """Load one candle file (rejected rows reported, not fatal) into the store; print counts."""
    from autolearn.backtest import load_candles
    from autolearn.ledger.sql import SqlLedger

    if not path.exists():  # before the ledger is opened: a typo must not create one
        raise InputError(f"{path}: no such file")
    seconds = _check_granularity(granularity) if granularity else None
    report = load_candles(
        path, instrument=instrument, timeframe_s=seconds, errors="report", clock=clock
    )
    name = granularity or _granularity_of(report.candles.timeframe_s, path)
    _check_spacing(report.candles.time_us, report.candles.timeframe_s, name, path)
    with SqlLedger.open(ledger_url) as ledger:
        counts = ledger.upsert_candles(report.candles, granularity=name)
    candles = report.candles
    console.print(
        f"{path}: {candles.instrument} {name}, {len(candles)} bar(s) ({report.fmt.value}), "
        f"{'with' if candles.spread_pips is not None else 'without'} spread, "
        f"clock {report.clock}"
    )
    console.print(
        f"  candles: {counts.inserted} inserted, {counts.updated} updated, "
        f"{counts.unchanged} unchanged; {report.duplicates_dropped} duplicate(s) dropped, "
        f"{report.incomplete_dropped} incomplete skipped"
    )
    console.print(f"  rejected: {len(report.rejected)}")
    for bad in report.rejected[:show_rejected]:
        console.print(f"    row {bad.row}, column {bad.column}: {bad.reason} ({bad.value!r})")
    if len(report.rejected) > show_rejected:
        console.print(f"    ... {len(report.rejected) - show_rejected} more")
    emit_json(
        {
            "event": "candles_ingested",
            "path": str(path),
            "instrument": candles.instrument,
            "granularity": name,
            "bars": len(candles),
            "clock": report.clock,
            "inserted": counts.inserted,
            "updated": counts.updated,
            "unchanged": counts.unchanged,
            "rejected": len(report.rejected),
        }
    )


def _check_granularity(granularity: str) -> int:
    from autolearn.backtest._parsers import OANDA_GRANULARITY_S

    seconds = OANDA_GRANULARITY_S.get(granularity)
    if seconds is None:
        raise UsageError(
            f"--granularity {granularity!r} is not one of {sorted(OANDA_GRANULARITY_S)}"
        )
    return seconds


def _check_spacing(times: Any, seconds: int, name: str, path: Path) -> None:
    """Refuse bars that cannot be of the granularity (M1 data stored as M5, or the reverse).

    Bars closer than the bar length, or off its grid, are refused; so is a usual spacing that
    is another length once there are enough bars to tell (quiet minutes leave gaps, so a few
    bars 2 minutes apart are still M1).
    """
    import numpy as np

    gaps_s = np.diff(times) // 1_000_000
    if gaps_s.size == 0:
        return
    values, counts = np.unique(gaps_s, return_counts=True)
    usual_s = int(values[np.argmax(counts)])
    off_grid = seconds < 86_400 and bool(np.any(gaps_s % seconds))  # D/W shift with DST
    if int(gaps_s.min()) < seconds or off_grid or (gaps_s.size >= 100 and usual_s != seconds):
        raise InputError(
            f"{path}: its bars are usually {usual_s}s apart (closest {int(gaps_s.min())}s), "
            f"granularity {name} means {seconds}s; pass the granularity of the data"
        )


def _granularity_of(timeframe_s: int, path: Path) -> str:
    from autolearn.backtest._parsers import OANDA_GRANULARITY_S

    for name, seconds in OANDA_GRANULARITY_S.items():
        if seconds == timeframe_s:
            return name
    raise InputError(
        f"{path}: bars of {timeframe_s}s match no OANDA granularity; pass --granularity "
        "(and the file's bar length must match it)"
    )
