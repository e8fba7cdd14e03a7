"""OANDA v20 candles -> the ledger's candle store, page by page, resumably.

Functional core: ``map_candle_page`` turns one raw ``GET /v3/instruments/{i}/candles`` body into
the ``Candles`` to store (mid OHLC, ``spread_pips`` = ask close - bid close), never raising on a
bad bar: it lands in ``rejected`` with its position and reason. Imperative shell:
``ingest_candles`` pages with a ``V20Client`` (its retries, deadline and token redaction),
upserts each page into a ``CandleSink`` and moves the cursor.

Rules, each for a failure worth naming:
- only ``complete`` bars are stored: a forming bar's close is not final. Nothing at or after
  the first incomplete bar of a page is stored either, so the cursor never passes a bar that
  was not final (it is fetched again, complete, by the next run);
- cursor ``oanda_candles:{instrument}:{granularity}`` holds the open time of the last stored bar
  (RFC 3339). Each page is written before the cursor moves, so an interrupted run (a broker
  outage after the retries, a crash) loses nothing, and the rerun asks only for bars after the
  cursor (``includeFirst=false``); a crash between the two replays one page, which the
  idempotent upsert counts as ``unchanged``;
- a gap (weekend, a quiet minute) stays a gap: no bar is ever synthesised;
- a malformed complete bar (bad number, high below low, crossed or missing bid/ask) is
  reported, not stored, and does not stop the import (it would
  fail identically on every run); bars after it keep flowing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from autolearn.adapters.logs import get_logger
from autolearn.backtest._parsers import OANDA_GRANULARITY_S, RawRows, parse_oanda_json
from autolearn.backtest.candles import Candles, RejectedRow, candles_from_rows
from autolearn.core.timestamps import (
    TimestampError,
    format_utc,
    from_epoch_us,
    parse_utc,
    to_epoch_us,
)
from autolearn.errors import InputError, LedgerError
from autolearn.ledger._base import UpsertCounts
from autolearn.oanda.client import MAX_CANDLES, V20Client

__all__ = [
    "DEFAULT_LOOKBACK",
    "SOURCE",
    "CandleIngestReport",
    "CandlePage",
    "CandleSink",
    "candles_cursor",
    "ingest_candles",
    "map_candle_page",
]

SOURCE = "oanda:v20"
# First run without --since: one month, what autotune's default window reads.
DEFAULT_LOOKBACK = timedelta(days=30)

_log = get_logger(__name__)  # structlog loads on the first line logged


class CandleSink(Protocol):
    """The slice of the ``Ledger`` the candle importer writes to (idempotent upsert, cursors)."""

    def upsert_candles(self, candles: Candles, *, granularity: str = "M1") -> UpsertCounts: ...

    def get_cursor(self, name: str) -> str | None: ...

    def set_cursor(self, name: str, value: str) -> None: ...


def candles_cursor(instrument: str, granularity: str) -> str:
    """Name of the cursor holding the open time of the last stored bar."""
    return f"oanda_candles:{instrument}:{granularity}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CandlePage:
    """The pure result of mapping one page.

    ``candles`` are the bars to store (complete, after ``after_us``, before the page's first
    incomplete bar). ``incomplete`` counts bars not final yet (and any held back behind one),
    ``duplicates`` bars at or before the cursor or repeated in the page.
    """

    candles: Candles
    received: int
    incomplete: int
    duplicates: int
    rejected: tuple[RejectedRow, ...]


def map_candle_page(
    body: Mapping[str, object], *, instrument: str, granularity: str, after_us: int | None
) -> CandlePage:
    """Map one raw candles body to the bars to store; never raises on a bad bar."""
    raw_list = body.get("candles")
    received = raw_list if isinstance(raw_list, list) else []
    parsed = parse_oanda_json({"candles": received})
    cut = _first_incomplete_us(received)
    kept = RawRows()
    missing: list[RejectedRow] = []
    duplicates = held_back = 0
    for row, time_us, values, spread in zip(
        parsed.rows, parsed.time_us, parsed.prices, parsed.spreads, strict=True
    ):
        if after_us is not None and time_us <= after_us:
            duplicates += 1  # the overlap with what is already stored
        elif cut is not None and time_us >= cut:
            held_back += 1  # after a forming bar: wait until that one is final
        elif math.isnan(spread):
            missing.append(
                RejectedRow(row=row, column="bid/ask", value="", reason="no bid/ask (price=MBA)")
            )
        else:
            kept.add(row, time_us, values, spread)
    candles, conflicts, repeated = candles_from_rows(
        kept,
        instrument=instrument,
        timeframe_s=OANDA_GRANULARITY_S[granularity],
        source=SOURCE,
        where=f"OANDA candles {instrument} {granularity}",
    )
    rejected = [*parsed.rejected, *missing, *conflicts]
    return CandlePage(
        candles=candles,
        received=len(received),
        incomplete=parsed.incomplete_dropped + held_back,
        duplicates=duplicates + repeated,
        rejected=tuple(sorted(rejected, key=lambda r: r.row)),
    )


def _first_incomplete_us(candles: list[object]) -> int | None:
    """Open time of the earliest bar not marked complete (None: every bar is final)."""
    times = []
    for candle in candles:
        if isinstance(candle, Mapping) and candle.get("complete") is not True:
            try:
                times.append(to_epoch_us(parse_utc(candle.get("time"))))  # type: ignore[arg-type]
            except TimestampError:
                continue  # rejected by the parser anyway
    return min(times) if times else None


@dataclass(frozen=True, slots=True, kw_only=True)
class CandleIngestReport:
    """What one ``ingest_candles`` run did."""

    instrument: str
    granularity: str
    started_after: datetime | None  # the cursor at the start (None: first run)
    last_stored: datetime | None  # the cursor at the end
    fetched: int
    pages: int
    retries: int
    counts: UpsertCounts
    incomplete_skipped: int
    duplicates: int
    rejected: tuple[RejectedRow, ...]
    finished_at: datetime

    def format(self) -> str:
        """A short human summary (one line per fact, then one per rejected bar)."""
        start = format_utc(self.started_after) if self.started_after else "the start"
        end = format_utc(self.last_stored) if self.last_stored else "nothing stored"
        lines = [
            f"OANDA candles {self.instrument} {self.granularity}: after {start} -> {end}",
            f"  fetched {self.fetched} bar(s) in {self.pages} page(s), {self.retries} "
            f"retr{'y' if self.retries == 1 else 'ies'}, {self.duplicates} already stored",
            f"  candles: {self.counts.inserted} inserted, {self.counts.updated} updated, "
            f"{self.counts.unchanged} unchanged, {self.incomplete_skipped} incomplete skipped",
            f"  rejected: {len(self.rejected)}",
        ]
        lines += [f"    bar {r.row} {r.column}: {r.reason} ({r.value})" for r in self.rejected]
        return "\n".join(lines)


def ingest_candles(
    client: V20Client,
    instrument: str,
    sink: CandleSink,
    *,
    granularity: str = "M1",
    since: datetime | None = None,
    now: datetime | None = None,
    max_pages: int | None = None,
    page_size: int = MAX_CANDLES,
) -> CandleIngestReport:
    """Store every complete bar after the cursor (first run: from ``since``); resumable.

    Each page is upserted, then the cursor set to its last bar, before the next is fetched.
    ``since`` only matters on the first run (default ``now - DEFAULT_LOOKBACK``).

    Raises:
        BrokerUnavailable / BrokerRejected: from the client (pages stored so far stay stored).
        LedgerError: the cursor holds something that is not a time.
        InputError: unknown granularity.
    """
    if granularity not in OANDA_GRANULARITY_S:
        raise InputError(
            f"unknown candle granularity {granularity!r}; known: {sorted(OANDA_GRANULARITY_S)}"
        )
    wall_now = now if now is not None else datetime.now(UTC)
    name = candles_cursor(instrument, granularity)
    started = _read_cursor(sink.get_cursor(name), name)
    after = started
    retries_before = client.retries
    counts = UpsertCounts()
    rejected: list[RejectedRow] = []
    fetched = pages = incomplete = duplicates = 0
    while max_pages is None or pages < max_pages:
        body = client.candles(
            instrument,
            granularity=granularity,
            price="MBA",
            count=page_size,
            from_time=after or since or wall_now - DEFAULT_LOOKBACK,
            include_first=after is None,
        )
        pages += 1
        after_us = None if after is None else to_epoch_us(after)
        page = map_candle_page(
            body, instrument=instrument, granularity=granularity, after_us=after_us
        )
        fetched += page.received
        incomplete += page.incomplete
        duplicates += page.duplicates
        rejected += page.rejected
        for item in page.rejected:
            _log.warning(
                "oanda_candle_rejected", instrument=instrument, row=item.row, reason=item.reason
            )
        if len(page.candles):
            # Bars first, then the cursor: a crash in between replays this page (unchanged).
            counts += sink.upsert_candles(page.candles, granularity=granularity)
            after = from_epoch_us(int(page.candles.time_us[-1]))
            sink.set_cursor(name, format_utc(after))
        if page.received < page_size or page.incomplete or not len(page.candles):
            break  # reached the forming bar or the present, or the server is not advancing
    report = CandleIngestReport(
        instrument=instrument,
        granularity=granularity,
        started_after=started,
        last_stored=after,
        fetched=fetched,
        pages=pages,
        retries=client.retries - retries_before,
        counts=counts,
        incomplete_skipped=incomplete,
        duplicates=duplicates,
        rejected=tuple(rejected),
        finished_at=wall_now,
    )
    _log.info(
        "oanda_candles_ingested",
        instrument=instrument,
        granularity=granularity,
        last_stored=format_utc(after) if after else None,
        fetched=fetched,
        inserted=counts.inserted,
        updated=counts.updated,
        unchanged=counts.unchanged,
        incomplete_skipped=incomplete,
        rejected=len(rejected),
        pages=pages,
        retries=report.retries,
    )
    return report


def _read_cursor(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_utc(value)
    except TimestampError as exc:
        raise LedgerError(
            f"cursor {name} holds {value!r}, not a UTC time: set it to the open time of the "
            "last stored bar (or delete it to import from --since again)"
        ) from exc
