"""Row parsers for every candle format in shared/data/fx, each to local-clock rows plus rejects.

A parser reads text already in memory and returns a :class:`RawRows`: times on the *source* clock
(epoch microseconds read as if UTC), float prices, and one :class:`RejectedRow` per bad row with
its 1-based row number (the line number for text files, the position in the list for JSON) and
column. It never raises on a bad row and never converts clocks, sorts or de-duplicates: that is
the caller's job (``candles.py``), so every format gets the same rules.

Pure: no file or network I/O, no clock.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from autolearn.core.timestamps import TimestampError, parse_utc, to_epoch_us

__all__ = [
    "OANDA_GRANULARITY_S",
    "DelimitedSpec",
    "RawRows",
    "RejectedRow",
    "delimited_line",
    "histdata_line",
    "parse_delimited",
    "parse_factor_cache",
    "parse_histdata",
    "parse_oanda_json",
]

# OANDA v20 CandlestickGranularity -> seconds (monthly "M" has no fixed length: unsupported).
OANDA_GRANULARITY_S = {
    "S5": 5,
    "S10": 10,
    "S15": 15,
    "S30": 30,
    "M1": 60,
    "M2": 120,
    "M4": 240,
    "M5": 300,
    "M10": 600,
    "M15": 900,
    "M30": 1800,
    "H1": 3600,
    "H2": 7200,
    "H3": 10800,
    "H4": 14400,
    "H6": 21600,
    "H8": 28800,
    "H12": 43200,
    "D": 86400,
    "W": 604800,
}
_EPOCH_NAIVE = datetime(1970, 1, 1)
_ONE_US = timedelta(microseconds=1)
_PRICE_COLUMNS = ("open", "high", "low", "close")


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectedRow:
    """One input row that was not loaded, and why (``row`` is 1-based, as an editor shows it)."""

    row: int
    column: str
    value: str
    reason: str


@dataclass(slots=True)
class RawRows:
    """Accumulator of parsed rows on the source clock (mutable only while one parser fills it)."""

    rows: list[int] = field(default_factory=list)
    time_us: list[int] = field(default_factory=list)
    prices: list[tuple[float, float, float, float, float]] = field(default_factory=list)
    # Per row, in price units (NaN: this row had none); the caller converts to pips.
    spreads: list[float] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    incomplete_dropped: int = 0
    instrument: str = ""
    timeframe_s: int = 0
    pending_spread: float = math.nan  # the current row's spread, between its checks and add()

    def reject(self, row: int, column: str, value: object, reason: str) -> None:
        self.rejected.append(RejectedRow(row=row, column=column, value=str(value), reason=reason))

    def add(
        self,
        row: int,
        time_us: int,
        values: tuple[float, float, float, float, float],
        spread: float = math.nan,
    ) -> None:
        self.rows.append(row)
        self.time_us.append(time_us)
        self.prices.append(values)
        self.spreads.append(spread)


def _naive_us(text: str, compact: bool) -> int:
    """``YYYY-MM-DD HH:MM:SS`` or ``YYYYMMDD HHMMSS`` (no zone) -> epoch us read as if UTC."""
    text = text.strip()
    if compact:
        if len(text) != 15 or text[8] != " ":
            raise ValueError("expected YYYYMMDD HHMMSS")
        parts = (text[0:4], text[4:6], text[6:8], text[9:11], text[11:13], text[13:15])
    else:
        if len(text) != 19 or text[10] not in " T" or text[4] != "-" or text[13] != ":":
            raise ValueError("expected YYYY-MM-DD HH:MM:SS")
        parts = (text[0:4], text[5:7], text[8:10], text[11:13], text[14:16], text[17:19])
    if not all(p.isdigit() for p in parts):
        raise ValueError("non-digit in date or time")
    year, month, day, hour, minute, second = (int(p) for p in parts)
    moment = datetime(year, month, day, hour, minute, second)  # validates the calendar
    return (moment - _EPOCH_NAIVE) // _ONE_US


def _epoch_s_us(text: str) -> int:
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise ValueError("expected epoch seconds") from exc
    if not value.is_finite():
        raise ValueError("expected finite epoch seconds")
    if abs(value) >= _MAX_EPOCH_S:  # beyond int64 microseconds (and any real bar) otherwise
        raise ValueError(f"epoch seconds out of range (|t| < {_MAX_EPOCH_S:,})")
    return int(value * 1_000_000)


_MAX_EPOCH_S = 10**11  # year ~5138: far beyond any bar, far inside int64 microseconds


def _price(out: RawRows, row: int, column: str, text: object) -> float | None:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        out.reject(row, column, text, "not a number")
        return None
    if not math.isfinite(value) or (value <= 0 and column != "volume") or value < 0:
        out.reject(row, column, text, "must be finite and > 0 (volume >= 0)")
        return None
    return value


def _ohlcv(out: RawRows, row: int, fields: list[object]) -> tuple[float, ...] | None:
    values: list[float] = []
    for column, text in zip((*_PRICE_COLUMNS, "volume"), fields, strict=True):
        value = _price(out, row, column, text)
        if value is None:
            return None
        values.append(value)
    o, h, low, c, _ = values
    if h < max(o, c, low):
        out.reject(row, "high", h, f"high below open/close/low ({o}, {c}, {low})")
        return None
    if low > min(o, c):
        out.reject(row, "low", low, f"low above open/close ({o}, {c})")
        return None
    return tuple(values)


def parse_histdata(text: str) -> RawRows:
    """HistData generic ASCII: ``YYYYMMDD HHMMSS;o;h;l;c;v``, no header.

    Row by row: the reference the loader's vectorised parser (``_bulk``) must equal.
    """
    out = RawRows()
    for row, line in enumerate(text.splitlines(), start=1):
        histdata_line(out, row, line)
    return out


def histdata_line(out: RawRows, row: int, line: str) -> None:
    """One HistData line into ``out`` (added, rejected, or skipped when blank)."""
    if not line.strip():
        return
    fields = line.strip().split(";")
    if len(fields) != 6:
        out.reject(row, "(row)", line, f"expected 6 ';'-separated fields, got {len(fields)}")
        return
    _add_row(out, row, fields, time_kind="compact")


@dataclass(frozen=True, slots=True, kw_only=True)
class DelimitedSpec:
    """How to read the rows of one delimited file (see :func:`parse_delimited`)."""

    sep: str
    time_kind: str
    quoted: bool
    with_spread: bool

    @classmethod
    def of(
        cls, lines: list[str], *, sep: str, time_kind: str, quoted: bool, spread_points: bool
    ) -> DelimitedSpec:
        header = lines[0].replace(" ", "").lower().split(sep) if lines else []
        with_spread = spread_points and len(header) > 6 and header[6] == "spread"
        return cls(sep=sep, time_kind=time_kind, quoted=quoted, with_spread=with_spread)


def parse_delimited(
    text: str, *, sep: str, time_kind: str, quoted: bool = False, spread_points: bool = False
) -> RawRows:
    """A header line then ``time, o, h, l, c, volume[, extra...]`` rows (MT5, backtesting.py).

    ``time_kind`` is ``"ymd"`` (``YYYY-MM-DD HH:MM:SS``) or ``"epoch_s"``. ``quoted`` strips the
    double quotes that wrap every line of the hadiforoughi original. ``spread_points`` reads a
    7th column named ``spread`` in MT5 points (one unit of the last quoted digit, so 18 points
    on a 5-digit EUR/USD is 0.00018). The quote precision is the most common number of
    decimals among the prices: rows drop trailing zeros, and some carry float noise
    (``1.1234500000000001``), so neither one row nor the maximum would do.

    Row by row: the reference the loader's vectorised parser (``_bulk``) must equal.
    """
    out = RawRows()
    lines = text.splitlines()
    spec = DelimitedSpec.of(
        lines, sep=sep, time_kind=time_kind, quoted=quoted, spread_points=spread_points
    )
    decimals: Counter[int] = Counter()
    for row, line in enumerate(lines, start=1):
        if row == 1:
            continue  # header (checked by format detection)
        counted = delimited_line(out, row, line, spec)
        if counted is not None:
            decimals.update(counted)
    if spec.with_spread:
        # Points -> price units once the file's quote precision is known.
        digits = decimals.most_common(1)[0][0] if decimals else 0
        out.spreads = [points * 10.0**-digits for points in out.spreads]
    return out


def delimited_line(out: RawRows, row: int, line: str, spec: DelimitedSpec) -> list[int] | None:
    """One data line into ``out``; returns its four prices' decimals when they count.

    They count (for the spread's quote precision) on every row with enough fields, even one
    rejected later for its spread, time or prices: the precision is the file's, not the row's.
    """
    if not line.strip():
        return None
    body = line.strip()
    if spec.quoted:
        if len(body) < 2 or body[0] != '"' or body[-1] != '"':
            out.reject(row, "(row)", line, "expected the line wrapped in double quotes")
            return None
        body = body[1:-1]
    fields = body.split(spec.sep)
    if len(fields) < 6:
        out.reject(row, "(row)", line, f"expected >= 6 fields separated by {spec.sep!r}")
        return None
    counted = None
    if spec.with_spread:
        counted = [_decimals(f) for f in fields[1:5]]
        if not _spread_row(out, row, fields):
            return counted
    _add_row(out, row, fields[:6], time_kind=spec.time_kind)
    return counted


def _decimals(text: str) -> int:
    _, dot, frac = text.strip().partition(".")
    return len(frac) if dot and frac.isdigit() else 0


def _spread_row(out: RawRows, row: int, fields: list[str]) -> bool:
    """Check the row's spread column (points); ``_add_row`` stores it with the row."""
    text = fields[6] if len(fields) > 6 else ""
    try:
        points = float(text)
    except ValueError:
        out.reject(row, "spread", text, "not a number")
        return False
    if not math.isfinite(points) or points < 0:
        out.reject(row, "spread", text, "must be finite and >= 0 (points)")
        return False
    out.pending_spread = points
    return True


def _add_row(out: RawRows, row: int, fields: list[str], *, time_kind: str) -> None:
    try:
        if time_kind == "epoch_s":
            time_us = _epoch_s_us(fields[0])
        else:
            time_us = _naive_us(fields[0], compact=time_kind == "compact")
    except ValueError as exc:
        out.reject(row, "time", fields[0], str(exc))
        return
    values = _ohlcv(out, row, list(fields[1:6]))
    spread, out.pending_spread = out.pending_spread, math.nan
    if values is not None:
        out.add(row, time_us, values, spread)  # type: ignore[arg-type]


def _json_time(out: RawRows, row: int, text: object) -> int | None:
    if isinstance(text, str) and text.replace(".", "", 1).isdigit():
        return _epoch_s_us(text)  # OANDA's Accept-Datetime-Format: UNIX
    try:
        return to_epoch_us(parse_utc(text))  # type: ignore[arg-type]
    except TimestampError as exc:
        out.reject(row, "time", text, str(exc))
        return None


def parse_oanda_json(doc: object) -> RawRows:
    """OANDA v20 ``GET /v3/instruments/{i}/candles`` body: mid prices, incomplete ones dropped.

    With ``bid`` and ``ask`` beside ``mid`` (``price=MBA``) the row's spread is ask close - bid
    close; a crossed quote (ask below bid) rejects the row.
    """
    out = RawRows()
    if not isinstance(doc, dict) or not isinstance(doc.get("candles"), list):
        out.reject(0, "candles", type(doc).__name__, "expected an object with a 'candles' list")
        return out
    out.instrument = str(doc.get("instrument") or "")
    out.timeframe_s = OANDA_GRANULARITY_S.get(str(doc.get("granularity") or ""), 0)
    for row, candle in enumerate(doc["candles"], start=1):
        if not isinstance(candle, dict) or not isinstance(candle.get("mid"), dict):
            out.reject(row, "mid", json.dumps(candle)[:80], "no 'mid' prices (request price=M)")
            continue
        if candle.get("complete") is not True:
            out.incomplete_dropped += 1  # still forming: its close is not final
            continue
        time_us = _json_time(out, row, candle.get("time"))
        if time_us is None:
            continue
        mid = candle["mid"]
        fields = [mid.get("o"), mid.get("h"), mid.get("l"), mid.get("c"), candle.get("volume", 0)]
        values = _ohlcv(out, row, fields)
        if values is None:
            continue
        spread = _bid_ask_spread(out, row, candle)
        if spread is not None:
            out.add(row, time_us, values, spread)  # type: ignore[arg-type]
    return out


def _bid_ask_spread(out: RawRows, row: int, candle: dict[str, object]) -> float | None:
    """``ask.c - bid.c`` in price units (NaN without both sides; None: rejected, crossed)."""
    bid, ask = candle.get("bid"), candle.get("ask")
    if not isinstance(bid, dict) or not isinstance(ask, dict):
        return math.nan  # price=M: mid only
    closes = []
    for side, prices in (("bid", bid), ("ask", ask)):
        value = _price(out, row, f"{side}.c", prices.get("c"))
        if value is None:
            return None
        closes.append(value)
    bid_c, ask_c = closes
    if ask_c < bid_c:
        out.reject(row, "ask.c", ask_c, f"ask close below bid close {bid_c} (crossed quote)")
        return None
    return ask_c - bid_c


def parse_factor_cache(doc: object, timeframe: str) -> RawRows:
    """QuantRabbit ``factor_cache.json``: ``{TF: {..., candles: [{timestamp, o, h, l, c}]}}``.

    The last candle of each timeframe is the one still forming and is dropped. The file is a
    rolling buffer written many times, so the same bar recurs; the caller's de-duplication rules
    apply (an earlier snapshot of a forming bar conflicts with the finished one).
    """
    out = RawRows()
    section = doc.get(timeframe) if isinstance(doc, dict) else None
    if not isinstance(section, dict) or not isinstance(section.get("candles"), list):
        known = sorted(doc) if isinstance(doc, dict) else []
        out.reject(0, timeframe, "", f"no '{timeframe}.candles' list; timeframes: {known}")
        return out
    out.timeframe_s = OANDA_GRANULARITY_S.get(timeframe, 0)
    candles = section["candles"]
    out.incomplete_dropped = 1 if candles else 0
    for row, candle in enumerate(candles[:-1], start=1):
        if not isinstance(candle, dict):
            out.reject(row, "(row)", candle, "expected an object")
            continue
        time_us = _json_time(out, row, candle.get("timestamp"))
        if time_us is None:
            continue
        fields = [candle.get(k) for k in _PRICE_COLUMNS] + [0.0]
        values = _ohlcv(out, row, fields)
        if values is not None:
            out.add(row, time_us, values)  # type: ignore[arg-type]
    return out
