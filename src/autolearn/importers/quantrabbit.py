"""Import QuantRabbit's own trade records (``trades.db`` SQLite, ``trades_latest.csv``) as Trades.

Row by row, never crashing on row content: every row becomes either an accepted :class:`Trade`
or a :class:`RejectedRow` naming file, row, column, value and reason (see ``report.py``). Only a
file that cannot be read at all, or that lacks a required column, raises :class:`InputError`.

Mapping (original-system.md section 2.1):
- key: ``ticket_id`` -> ``broker_trade_id``, ``transaction_id`` -> ``close_tx_id`` ("" when the
  source has none, as in the CSV export);
- ``units`` is signed (+long / -short): side from its sign (the CSV ``direction`` column must
  agree), size = ``closed_units`` when the row has it (partial fills), else ``abs(units)``;
- ``entry_time`` (else ``open_time``, else ``entry_ts``) and ``close_time`` go through
  ``parse_utc``: a naive or garbled timestamp rejects the row, it is never guessed;
- strategy: ``strategy``, ``strategy_tag``, ``entry_thesis.strategy_tag``, then the client order id
  ``qr-<epoch_ms>-<pocket>-<strategy>`` (or ``qr-<pocket>-<epoch_ms>-<strategy>``), else
  ``"unknown"``; regimes from ``macro_regime``/``micro_regime`` or ``entry_thesis``;
- ``pl_pips`` as stored, or computed from the prices with ``pip_size`` when empty;
- ``state`` must be CLOSED or PARTIAL (missing column: CLOSED, noted in the report);
- ``config_version`` is "" (unknown) for all legacy trades.

This module reads files; it must not write anything (the ledger does) and must not consult
``orders.db``.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import quote

from autolearn.core.model import Side, Trade, TradeState, pip_size
from autolearn.core.plausibility import TradeLimits, implausible_trade
from autolearn.core.timestamps import TimestampError, parse_utc
from autolearn.errors import InputError
from autolearn.importers.report import ImportReport, ReportBuilder

__all__ = [
    "CHUNK_ROWS",
    "DEFAULT_INSTRUMENT",
    "TradeSink",
    "import_path",
    "import_trades_csv",
    "import_trades_db",
    "strategy_from_client_order_id",
]

# The CSV export has no instrument column; QuantRabbit traded USD/JPY only (data README), and
# its pl_pips use the JPY pip (x100). Callers can override it; the report notes the assumption.
DEFAULT_INSTRUMENT = "USD_JPY"

# Accepted trades handed to a sink at a time: big enough for few ledger transactions, small
# enough that a 1M-row import holds a few MB of trades instead of ~1 GB.
CHUNK_ROWS = 10_000

# Receives accepted trades in input order, a chunk at a time (e.g. a ledger upsert; what it
# returns is ignored).
TradeSink = Callable[[list[Trade]], object]

# The ledger stores units as a signed 64-bit integer; anything larger is garbage, not a trade.
_MAX_UNITS = 2**63 - 1
_DB_SUFFIXES = frozenset({".db", ".sqlite", ".sqlite3"})
_CSV_SUFFIXES = frozenset({".csv"})
_V3_MARKERS = frozenset({"strategy", "strategy_tag", "client_order_id", "entry_thesis"})
_COMMON_REQUIRED = (
    "ticket_id",
    "pocket",
    "units",
    "entry_price",
    "close_price",
    "close_time",
    "realized_pl",
)
_DB_ENTRY_COLUMNS = ("entry_time", "open_time")
_CSV_ENTRY_COLUMNS = ("entry_time", "open_time", "entry_ts")
_CLIENT_ID_PATTERNS = (
    re.compile(r"^qr-\d+-(?P<pocket>[A-Za-z_]+)-(?P<strategy>.+)$"),
    re.compile(r"^qr-(?P<pocket>[A-Za-z_]+)-\d+-(?P<strategy>.+)$"),
)
# What errors="surrogateescape" makes of an undecodable byte (see import_trades_csv).
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
# The ISO form QuantRabbit writes (``datetime.isoformat()``): ``datetime.fromisoformat`` reads
# it in C to the same value as ``parse_utc``, which takes every other form (and the errors).
_ISO_PLAIN = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{6})?"
    r"[+-](?:[01][0-9]|2[0-3]):[0-5][0-9]"  # fromisoformat would take +01:60; parse_utc not
)
_DIRECTIONS = {
    "1": Side.LONG,
    "+1": Side.LONG,
    "long": Side.LONG,
    "buy": Side.LONG,
    "-1": Side.SHORT,
    "short": Side.SHORT,
    "sell": Side.SHORT,
}


class _RowRejected(Exception):
    """Internal control flow: this row cannot become a trade (never escapes the module)."""

    def __init__(self, column: str, value: object, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.value = value
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class _Layout:
    """What a file offers: its format name, its columns, where entry times may be, defaults."""

    format_name: str
    columns: frozenset[str]
    entry_columns: tuple[str, ...]
    default_instrument: str | None


# Trade field -> the source column a rejection names.
_FIELD_COLUMNS = {
    "close_at": "close_time",
    "pl_account": "realized_pl",
    "units": "units",
    "entry_price": "entry_price",
    "close_price": "close_price",
    "pl_pips": "pl_pips",
}


@dataclass(frozen=True, slots=True)
class _Stream:
    """Where accepted trades go while importing: kept in the report, or a sink by chunks."""

    sink: TradeSink | None
    chunk_rows: int

    def __post_init__(self) -> None:
        if self.chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {self.chunk_rows!r}")

    def offer(self, builder: ReportBuilder) -> None:
        if self.sink is not None and builder.pending >= self.chunk_rows:
            self.sink(builder.take_accepted())

    def flush(self, builder: ReportBuilder) -> None:
        if self.sink is not None and builder.pending:
            self.sink(builder.take_accepted())


@dataclass(frozen=True, slots=True)
class _Check:
    """The plausibility check of one import: ``now`` and the limits."""

    now: datetime
    limits: TradeLimits

    @classmethod
    def of(cls, now: datetime | None, limits: TradeLimits | None) -> _Check:
        return cls(now or datetime.now(UTC), limits or TradeLimits())

    def plausible(self, trade: Trade, row: Mapping[str, Any], layout: _Layout) -> None:
        found = implausible_trade(trade, self.now, self.limits)
        if not found:
            return
        first = found[0]
        if first.field == "entry_at":
            column = next((c for c in layout.entry_columns if c in row), layout.entry_columns[0])
        else:
            column = _FIELD_COLUMNS.get(first.field, first.field)
        raw = row.get(column, first.value)
        reason = "; ".join(f"{f.field} {f.reason}" for f in found)
        raise _RowRejected(column, raw, f"implausible: {reason}")


# --------------------------------------------------------------------------------------------
# Public entry points


def import_path(
    path: str | Path,
    *,
    instrument: str = DEFAULT_INSTRUMENT,
    now: datetime | None = None,
    limits: TradeLimits | None = None,
    sink: TradeSink | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportReport:
    """Import a QuantRabbit file, choosing the reader by extension (.db/.sqlite vs .csv).

    ``instrument`` is used only for CSV exports, which have no instrument column. A row outside
    ``limits`` at ``now`` (default: the wall clock; a close time in the future, an absurd
    P/L) is rejected with its column, like any other bad row.

    With a ``sink``, the file is streamed: accepted trades go to ``sink`` in chunks of
    ``chunk_rows`` as they are read, and the report counts them (``streamed``) instead of
    holding them. Verdicts, rejections and notes are the same either way.

    Raises:
        InputError: unknown extension, unreadable file, or a required column is missing.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in _DB_SUFFIXES:
        return import_trades_db(p, now=now, limits=limits, sink=sink, chunk_rows=chunk_rows)
    if suffix in _CSV_SUFFIXES:
        return import_trades_csv(
            p, instrument=instrument, now=now, limits=limits, sink=sink, chunk_rows=chunk_rows
        )
    known = ", ".join(sorted(_DB_SUFFIXES | _CSV_SUFFIXES))
    raise InputError(f"{p}: unknown QuantRabbit file type {suffix!r}; expected one of {known}")


def import_trades_db(
    path: str | Path,
    *,
    now: datetime | None = None,
    limits: TradeLimits | None = None,
    sink: TradeSink | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportReport:
    """Import the ``trades`` table of a QuantRabbit ``trades.db`` (schema v2 or v3, by columns).

    The file is opened read-only; it is never modified. ``sink``: as :func:`import_path`.

    Raises:
        InputError: the file is not a readable SQLite database, has no ``trades`` table, or
            lacks a required column.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file; pass the path of a QuantRabbit trades.db")
    try:
        conn = sqlite3.connect(f"file:{quote(str(p.resolve()))}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise InputError(f"{p}: cannot open as SQLite: {exc}") from exc
    try:
        # Undecodable text must reject its row, not abort the whole read.
        conn.text_factory = _decode_or_keep_bytes
        return _import_db_rows(conn, p, _Check.of(now, limits), _Stream(sink, chunk_rows))
    except sqlite3.Error as exc:
        raise InputError(f"{p}: cannot read the trades table: {exc}") from exc
    finally:
        conn.close()


def import_trades_csv(
    path: str | Path,
    *,
    instrument: str = DEFAULT_INSTRUMENT,
    now: datetime | None = None,
    limits: TradeLimits | None = None,
    sink: TradeSink | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportReport:
    """Import a QuantRabbit CSV export (``trades_latest.csv``; header row required).

    ``sink``: as :func:`import_path`.

    Raises:
        InputError: the file cannot be read, has no header, or lacks a required column.
    """
    p = Path(path)
    try:
        # surrogateescape: a bad byte rejects its row (see _text) instead of the whole file.
        with p.open(encoding="utf-8", errors="surrogateescape", newline="") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames
            if not header:
                raise InputError(f"{p}: empty file or no header row; expected a CSV header")
            layout = _Layout(
                format_name="quantrabbit-csv",
                columns=frozenset(header),
                entry_columns=_CSV_ENTRY_COLUMNS,
                default_instrument=instrument,
            )
            _require_columns(p, layout)
            builder = ReportBuilder(source=str(p), format_name=layout.format_name)
            if "instrument" not in layout.columns:
                builder.note(f"no instrument column: every row taken as {instrument}")
            rows = _csv_rows(reader, len(header))
            stream = _Stream(sink, chunk_rows)
            return _convert_all(rows, layout, builder, _Check.of(now, limits), stream)
    except OSError as exc:
        raise InputError(f"{p}: cannot read: {exc}") from exc


def strategy_from_client_order_id(client_order_id: str) -> str | None:
    """The strategy tag inside ``qr-<epoch_ms>-<pocket>-<strategy>`` (or ``qr-<pocket>-<ms>-...``).

    Returns None when the id has neither shape.
    """
    for pattern in _CLIENT_ID_PATTERNS:
        match = pattern.match(client_order_id.strip())
        if match is not None:
            return match.group("strategy")
    return None


# --------------------------------------------------------------------------------------------
# File readers (the shell part)


def _decode_or_keep_bytes(raw: bytes) -> str | bytes:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _import_db_rows(
    conn: sqlite3.Connection, p: Path, check: _Check, stream: _Stream
) -> ImportReport:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "trades" not in tables:
        raise InputError(f"{p}: no 'trades' table (found: {sorted(tables)}); not a trades.db?")
    columns = frozenset(r[1] for r in conn.execute("PRAGMA table_info(trades)"))
    version = "v3" if columns & _V3_MARKERS else "v2"
    layout = _Layout(
        format_name=f"quantrabbit-sqlite-{version}",
        columns=columns,
        entry_columns=_DB_ENTRY_COLUMNS,
        default_instrument=None,
    )
    _require_columns(p, layout)
    builder = ReportBuilder(source=str(p), format_name=layout.format_name)
    if "state" not in columns:
        builder.note("no state column: every row taken as CLOSED")
    # rowid locates a row for a person with the sqlite3 shell; ordered for a stable report.
    cursor = conn.execute("SELECT rowid, * FROM trades ORDER BY rowid")
    names = [d[0] for d in cursor.description][1:]
    # islice, not r[1:] with strict=True: no tuple copy per row (sqlite3 rows match names).
    rows = ((int(r[0]), dict(zip(names, islice(r, 1, None), strict=False))) for r in cursor)
    return _convert_all(rows, layout, builder, check, stream)


def _csv_rows(
    reader: csv.DictReader[str], width: int
) -> Iterator[tuple[int, dict[str, Any] | _RowRejected]]:
    while True:
        try:
            raw = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, _RowRejected("", "", f"unreadable CSV record: {exc}")
            continue
        # DictReader pads short rows with None and files extra fields under the key None.
        fields = sum(1 for k, v in raw.items() if k is not None and v is not None)
        fields += len(raw.get(None) or [])
        if fields != width:
            reason = f"row has {fields} fields but the header has {width}"
            yield reader.line_num, _RowRejected("", fields, reason)
            continue
        yield reader.line_num, dict(raw)


def _require_columns(p: Path, layout: _Layout) -> None:
    required = list(_COMMON_REQUIRED)
    if layout.default_instrument is None:
        required.append("instrument")
    missing = [c for c in required if c not in layout.columns]
    if not set(layout.entry_columns) & layout.columns:
        missing.append(" or ".join(layout.entry_columns))
    if missing:
        raise InputError(
            f"{p}: required column {missing[0]!r} is missing"
            + (f" (also {', '.join(missing[1:])})" if missing[1:] else "")
            + f"; found columns: {', '.join(sorted(layout.columns))}"
        )


def _convert_all(
    rows: Iterator[tuple[int, dict[str, Any] | _RowRejected]],
    layout: _Layout,
    builder: ReportBuilder,
    check: _Check,
    stream: _Stream,
) -> ImportReport:
    # key -> first row. One string per key, not a tuple of two: at 1M rows the index is most of
    # a streamed import's memory. NUL never occurs in either part (_text rejects it).
    seen: dict[str, int] = {}
    unreadable_thesis = 0
    rows_read = 0
    for row_no, row in rows:
        rows_read += 1
        try:
            if isinstance(row, _RowRejected):
                raise row
            trade, thesis_ok = _to_trade(row, layout)
            check.plausible(trade, row, layout)
            key = f"{trade.broker_trade_id}\x00{trade.close_tx_id}"
            if key in seen:
                raise _RowRejected(
                    "ticket_id",
                    trade.broker_trade_id,
                    f"duplicate key (ticket_id {trade.broker_trade_id!r}, transaction_id "
                    f"{trade.close_tx_id!r}): first seen at row {seen[key]}; keeping the first",
                )
        except _RowRejected as rej:
            builder.reject(row=row_no, column=rej.column, value=rej.value, reason=rej.reason)
            continue
        seen[key] = row_no
        unreadable_thesis += 0 if thesis_ok else 1
        builder.accept(trade)
        stream.offer(builder)
    stream.flush(builder)
    if unreadable_thesis:
        builder.note(
            f"{unreadable_thesis} accepted rows had unreadable entry_thesis JSON (ignored)"
        )
    return builder.build(rows_read=rows_read)


# --------------------------------------------------------------------------------------------
# One row -> one Trade (pure)


def _to_trade(row: Mapping[str, Any], layout: _Layout) -> tuple[Trade, bool]:
    ticket = _required_text(row, "ticket_id")
    pocket = _required_text(row, "pocket")
    instrument = _text(row, "instrument") or layout.default_instrument
    if not instrument:
        raise _RowRejected("instrument", row.get("instrument"), "empty; a trade needs its pair")
    signed_units = _signed_units(row)
    side = _side(row, signed_units)
    units = _closed_units(row) or abs(signed_units)
    entry_price = _price(row, "entry_price")
    close_price = _price(row, "close_price")
    entry_at = _entry_at(row, layout.entry_columns)
    close_at = _timestamp(row, "close_time")
    state = _state(row)
    thesis, thesis_ok = _thesis(row)
    pl_pips = _optional_float(row, "pl_pips")
    if pl_pips is None:
        pl_pips = side.sign * (close_price - entry_price) / pip_size(instrument)
    try:
        trade = Trade(
            broker_trade_id=ticket,
            close_tx_id=_tx_id(row, state),
            instrument=instrument,
            pocket=pocket,
            strategy=_strategy(row, thesis),
            side=side,
            units=units,
            entry_price=entry_price,
            close_price=close_price,
            entry_at=entry_at,
            close_at=close_at,
            pl_pips=pl_pips,
            pl_account=_required_float(row, "realized_pl"),
            broker_close_reason=_text(row, "close_reason") or "",
            regime_macro=_regime(row, thesis, "macro"),
            regime_micro=_regime(row, thesis, "micro"),
            config_version="",
            client_order_id=_text(row, "client_order_id") or "",
            state=state,
            source=layout.format_name,
        )
    except ValueError as exc:
        raise _RowRejected("", "", f"not a valid trade: {exc}") from exc
    return trade, thesis_ok


def _text(row: Mapping[str, Any], column: str) -> str | None:
    """The column as stripped text; None when absent, NULL or empty."""
    value = row.get(column)
    if value is None:
        return None
    if value.__class__ is str:  # the common case, without the checks below
        text = value.strip()
    else:
        if isinstance(value, bytes):
            raise _RowRejected(column, value, "not valid UTF-8 text")
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # SQLite may hand back 4263.0 for an integer id
        text = str(value).strip()
    # ASCII text holds no escaped bytes: only other text needs the (slower) search.
    if not text.isascii() and _ESCAPED_BYTE.search(text):
        raise _RowRejected(column, text.encode("utf-8", "surrogateescape"), "not valid UTF-8")
    if "\x00" in text:
        raise _RowRejected(column, text, "contains a NUL character")
    return text or None


def _required_text(row: Mapping[str, Any], column: str) -> str:
    text = _text(row, column)
    if text is None:
        raise _RowRejected(column, row.get(column), "empty; required")
    return text


def _optional_float(row: Mapping[str, Any], column: str) -> float | None:
    value = row.get(column)
    if isinstance(value, bool):
        raise _RowRejected(column, value, "not a number")
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = _text(row, column)
        if text is None:
            return None
        try:
            number = float(text)
        except ValueError:
            raise _RowRejected(column, value, "not a number") from None
    if not math.isfinite(number):
        raise _RowRejected(column, value, "not a finite number")
    return number


def _required_float(row: Mapping[str, Any], column: str) -> float:
    number = _optional_float(row, column)
    if number is None:
        raise _RowRejected(column, row.get(column), "empty; required")
    return number


def _price(row: Mapping[str, Any], column: str) -> float:
    price = _required_float(row, column)
    if price <= 0:
        raise _RowRejected(column, row.get(column), "a price must be > 0")
    return price


def _integer(row: Mapping[str, Any], column: str) -> int | None:
    number = _optional_float(row, column)
    if number is None:
        return None
    if not number.is_integer():
        raise _RowRejected(column, row.get(column), "not a whole number of units")
    return int(number)


def _signed_units(row: Mapping[str, Any]) -> int:
    units = _integer(row, "units")
    if units is None:
        raise _RowRejected("units", row.get("units"), "empty; required (signed: +long/-short)")
    if units == 0:
        raise _RowRejected("units", row.get("units"), "zero units: neither long nor short")
    if abs(units) > _MAX_UNITS:
        raise _RowRejected("units", row.get("units"), f"beyond {_MAX_UNITS} (64-bit storage)")
    return units


def _closed_units(row: Mapping[str, Any]) -> int | None:
    closed = _integer(row, "closed_units")
    if closed is None or closed == 0:
        return None  # older rows leave it empty or 0: the whole trade closed
    if closed < 0:
        raise _RowRejected("closed_units", row.get("closed_units"), "must be >= 0 (absolute)")
    if closed > _MAX_UNITS:
        raise _RowRejected(
            "closed_units", row.get("closed_units"), f"beyond {_MAX_UNITS} (64-bit storage)"
        )
    return closed


def _side(row: Mapping[str, Any], signed_units: int) -> Side:
    side = Side.LONG if signed_units > 0 else Side.SHORT
    direction = _text(row, "direction")
    if direction is None:
        return side
    stated = _DIRECTIONS.get(direction.lower())
    if stated is None:
        raise _RowRejected("direction", direction, "expected 1/-1, long/short or buy/sell")
    if stated is not side:
        raise _RowRejected(
            "direction", direction, f"disagrees with the sign of units {signed_units}"
        )
    return side


def _timestamp(row: Mapping[str, Any], column: str) -> datetime:
    value = row.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _RowRejected(column, value, "empty; a closed trade needs this time")
    if isinstance(value, str) and _ISO_PLAIN.fullmatch(value):
        try:
            return datetime.fromisoformat(value).astimezone(UTC)
        except ValueError:
            pass  # e.g. 30 February: parse_utc words the error
    try:
        return parse_utc(value.strip() if isinstance(value, str) else value)
    except TimestampError as exc:
        raise _RowRejected(column, value, str(exc)) from None


def _entry_at(row: Mapping[str, Any], columns: tuple[str, ...]) -> datetime:
    for column in columns:
        value = row.get(column)
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return _timestamp(row, column)
    raise _RowRejected(columns[0], None, f"empty, and so are {', '.join(columns[1:])}")


def _state(row: Mapping[str, Any]) -> TradeState:
    if "state" not in row:
        return TradeState.CLOSED
    text = _text(row, "state")
    try:
        return TradeState((text or "").upper())
    except ValueError:
        reason = "not a closed trade (CLOSED or PARTIAL)"
        raise _RowRejected("state", row.get("state"), reason) from None


def _tx_id(row: Mapping[str, Any], state: TradeState) -> str:
    tx = _text(row, "transaction_id")
    if tx is None and state is TradeState.PARTIAL:
        # Without the fill id two partial closes of one ticket would collapse into one row.
        raise _RowRejected("transaction_id", None, "empty on a PARTIAL row; required")
    return tx or ""


def _thesis(row: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    raw = row.get("entry_thesis")
    if raw is None or raw == "":
        return {}, True
    try:
        parsed = json.loads(raw) if isinstance(raw, str | bytes) else None
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        parsed = None
    if not isinstance(parsed, dict):
        return {}, False
    return parsed, True


def _thesis_text(thesis: Mapping[str, Any], *path: str) -> str:
    node: Any = thesis
    for key in path:
        if not isinstance(node, Mapping):
            return ""
        node = node.get(key)
    return node.strip() if isinstance(node, str) else ""


def _strategy(row: Mapping[str, Any], thesis: Mapping[str, Any]) -> str:
    for column in ("strategy", "strategy_tag"):
        text = _text(row, column)
        if text:
            return text
    from_thesis = _thesis_text(thesis, "strategy_tag")
    if from_thesis:
        return from_thesis
    client_id = _text(row, "client_order_id")
    parsed = strategy_from_client_order_id(client_id) if client_id else None
    return parsed or "unknown"


def _regime(row: Mapping[str, Any], thesis: Mapping[str, Any], which: str) -> str:
    return (
        _text(row, f"{which}_regime")
        or _thesis_text(thesis, f"{which}_regime")
        or _thesis_text(thesis, "regime", which)
    )
