"""Vectorised parsers for the text candle formats: the row-by-row ones in ``_parsers``, in bulk.

Two tiers, both equal to ``parse_histdata`` / ``parse_delimited`` (through ``row_arrays``):

* The whole file at once (``_whole_file``), the common case of a clean export: numpy checks
  every line's layout on the raw bytes (exactly the columns read, the time in its fixed
  layout), ``numpy.loadtxt`` reads the numbers (the same conversion as ``float``), and every
  check of the row parser (calendar, finite and positive prices, high/low bounds, spread) runs
  on whole columns. Anything odd anywhere returns None.
* Line by line: a strict regular expression (ASCII digits, no spaces, signs or exponents)
  picks the plainly well-formed lines for bulk conversion (``float`` mapped over columns); every
  other line, and every line failing a check, goes through the row parser itself
  (``histdata_line`` / ``delimited_line``), which rejects or accepts it with its own message.

So the bulk paths only ever accept rows the row parser accepts, with the same values; every
rejection, message and row number is the row parser's. ``tests/backtest/test_bulk_parsers.py``
compares both, bit for bit, on every bundled file and on files with odd lines mixed in.

Pure: no file or network I/O, no clock.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat

import numpy as np
from numpy.typing import NDArray

from autolearn.backtest._parsers import (
    DelimitedSpec,
    RawRows,
    RejectedRow,
    delimited_line,
    histdata_line,
)

__all__ = ["RowArrays", "bulk_delimited", "bulk_histdata", "row_arrays"]

# No sign, exponent, underscore, "inf"/"nan" or blank: what float() does with those is the row
# parser's business. Leading zeros are fine (float and int read them alike).
_NUM = r"[0-9]+(?:\.[0-9]+)?"
_TIME = {
    "compact": r"[0-9]{8} [0-9]{6}",  # YYYYMMDD HHMMSS
    "ymd": r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}",
    "epoch_s": r"[0-9]{1,12}",  # whole seconds; 12 digits keep time_us inside int64
}
# Where the six calendar fields sit in each fixed-width time text.
_DIGITS = {
    "compact": ((0, 4), (4, 6), (6, 8), (9, 11), (11, 13), (13, 15)),
    "ymd": ((0, 4), (5, 7), (8, 10), (11, 13), (14, 16), (17, 19)),
}
_HISTDATA = re.compile(rf"({_TIME['compact']});({_NUM});({_NUM});({_NUM});({_NUM});({_NUM})")


@dataclass(frozen=True, slots=True, kw_only=True)
class RowArrays:
    """Parsed rows as columns, in row order: ``row_arrays(raw)`` or the vectorised parsers.

    ``prices`` is ``(n, 5)``: open, high, low, close, volume; ``spreads`` is in price units
    (NaN: the row had none). Times are on the clock the producer says (source or UTC).
    """

    rows: NDArray[np.int64]
    time_us: NDArray[np.int64]
    prices: NDArray[np.float64]
    spreads: NDArray[np.float64]
    rejected: tuple[RejectedRow, ...] = ()
    incomplete_dropped: int = 0
    instrument: str = ""
    timeframe_s: int = 0


def row_arrays(raw: RawRows) -> RowArrays:
    """A row parser's output as columns (what the loader sorts and de-duplicates)."""
    prices = np.asarray(raw.prices, dtype=np.float64).reshape(-1, 5)
    spreads = np.asarray(raw.spreads, dtype=np.float64).reshape(-1)
    if len(spreads) != len(prices):  # a filler that never saw a spread
        spreads = np.full(len(prices), np.nan)
    return RowArrays(
        rows=np.asarray(raw.rows, dtype=np.int64).reshape(-1),
        time_us=np.asarray(raw.time_us, dtype=np.int64).reshape(-1),
        prices=prices,
        spreads=spreads,
        rejected=tuple(raw.rejected),
        incomplete_dropped=raw.incomplete_dropped,
        instrument=raw.instrument,
        timeframe_s=raw.timeframe_s,
    )


_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])

# The row parser for one line: (out, row number, line) -> None.
_RowParser = Callable[[RawRows, int, str], None]


def bulk_histdata(text: str) -> RowArrays:
    """``row_arrays(parse_histdata(text))``, vectorised."""
    whole = _whole_file(text, sep=";", time_kind="compact", header=False)
    if whole is not None:
        return whole
    lines = text.splitlines()
    matches = list(map(_HISTDATA.fullmatch, lines))
    arrays, _ = _assemble(lines, matches, time_kind="compact", spread=False, slow=histdata_line)
    return arrays


def bulk_delimited(
    text: str, *, sep: str, time_kind: str, quoted: bool = False, spread_points: bool = False
) -> RowArrays:
    """``row_arrays(parse_delimited(text, ...))``, vectorised (same arguments)."""
    lines = text.splitlines()
    spec = DelimitedSpec.of(
        lines, sep=sep, time_kind=time_kind, quoted=quoted, spread_points=spread_points
    )
    whole = _whole_file(
        text,
        sep=sep,
        time_kind=time_kind,
        header=True,
        quoted=quoted,
        with_spread=spec.with_spread,
    )
    if whole is not None:
        return whole
    s = re.escape(sep)
    body = s.join([f"({_TIME[time_kind]})", *[f"({_NUM})"] * 5])
    if spec.with_spread:
        body += f"{s}({_NUM})"
    # Columns past the ones read are ignored by the row parser too.
    body += f'(?:{s}[^"]*)?' if quoted else f"(?:{s}.*)?"
    pattern = re.compile(f'"{body}"' if quoted else body)
    matches: list[re.Match[str] | None] = []
    if lines:
        matches = [None, *map(pattern.fullmatch, lines[1:])]  # line 1: the header
    counted: dict[int, list[int]] = {}  # row -> decimals, for the lines the row parser read

    def slow(out: RawRows, row: int, line: str) -> None:
        decimals = delimited_line(out, row, line, spec)
        if decimals is not None:
            counted[row] = decimals

    arrays, taken = _assemble(
        lines, matches, time_kind=time_kind, spread=spec.with_spread, slow=slow, skip_first=True
    )
    if not spec.with_spread:
        return arrays
    digits = _quote_digits([(i + 1, matches[i]) for i in taken.tolist()], counted)
    return RowArrays(
        rows=arrays.rows,
        time_us=arrays.time_us,
        prices=arrays.prices,
        spreads=arrays.spreads * 10.0**-digits,  # the row parser's points -> price units
        rejected=arrays.rejected,
    )


def _assemble(
    lines: list[str],
    matches: list[re.Match[str] | None],
    *,
    time_kind: str,
    spread: bool,
    slow: _RowParser,
    skip_first: bool = False,
) -> tuple[RowArrays, NDArray[np.int64]]:
    """Bulk-parse the matched lines, send the rest to ``slow``, merge both in row order.

    Also returns the indices of the lines taken in bulk.
    """
    index = np.fromiter((m is not None for m in matches), dtype=bool, count=len(matches))
    matched = np.flatnonzero(index)
    columns = list(zip(*(m.groups() for m in matches if m is not None), strict=True))
    n_fields = 7 if spread else 6
    if not columns:
        columns = [()] * n_fields
    time_us, calendar_ok = _times(columns[0], time_kind)
    values = np.empty((len(matched), 5), dtype=np.float64)
    for k in range(5):
        values[:, k] = np.fromiter(map(float, columns[1 + k]), np.float64, len(matched))
    ok = calendar_ok & _prices_ok(values)
    spreads = np.full(len(matched), np.nan)
    if spread:
        spreads = np.fromiter(map(float, columns[6]), np.float64, len(matched))
        ok &= np.isfinite(spreads)  # >= 0 by the expression
    # Every line the bulk path does not take, in row order, through the row parser.
    take = np.zeros(len(lines), dtype=bool)
    take[matched[ok]] = True
    out = RawRows()
    for i in np.flatnonzero(~take).tolist():
        if i == 0 and skip_first:
            continue  # the header
        slow(out, i + 1, lines[i])
    by_row = row_arrays(out)
    rows = np.concatenate([matched[ok] + 1, by_row.rows])
    order = np.argsort(rows, kind="stable")
    arrays = RowArrays(
        rows=rows[order],
        time_us=np.concatenate([time_us[ok], by_row.time_us])[order],
        prices=np.concatenate([values[ok], by_row.prices])[order],
        spreads=np.concatenate([spreads[ok], by_row.spreads])[order],
        rejected=by_row.rejected,
    )
    return arrays, matched[ok]


def _times(texts: tuple[str, ...], time_kind: str) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Epoch microseconds (local clock read as UTC) and which texts are real calendar times."""
    n = len(texts)
    if time_kind == "epoch_s":
        seconds = np.fromiter(map(int, texts), np.int64, n)
        return seconds * 1_000_000, np.ones(n, dtype=bool)
    width = 15 if time_kind == "compact" else 19
    raw = np.frombuffer("".join(texts).encode("ascii"), dtype=np.uint8)
    return _calendar_us(raw.reshape(n, width).astype(np.int64) - ord("0"), time_kind)


def _calendar_us(
    digits: NDArray[np.int64], time_kind: str
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Fixed-width time texts as digit values (one row each) -> epoch us, valid-date mask.

    Valid means what ``datetime(...)`` accepts, the row parser's check.
    """
    year, month, day, hour, minute, second = (
        _number(digits[:, a:b]) for a, b in _DIGITS[time_kind]
    )
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_ok = (month >= 1) & (month <= 12)
    safe_month = np.where(month_ok, month, 1)
    days_in = _DAYS_IN_MONTH[safe_month] + (leap & (month == 2))
    ok = (
        (year >= 1)  # datetime.MINYEAR
        & month_ok
        & (day >= 1)
        & (day <= days_in)
        & (hour <= 23)
        & (minute <= 59)
        & (second <= 59)
    )
    days = _days_from_civil(year, safe_month, day)
    seconds_of_day = hour * 3600 + minute * 60 + second
    return (days * 86_400 + seconds_of_day) * 1_000_000, ok


def _number(digits: NDArray[np.int64]) -> NDArray[np.int64]:
    """Decimal digit columns -> their integer value per row."""
    value = np.zeros(len(digits), dtype=np.int64)
    for k in range(digits.shape[1]):
        value = value * 10 + digits[:, k]
    return value


def _days_from_civil(
    year: NDArray[np.int64], month: NDArray[np.int64], day: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * np.where(month > 2, month - 3, month + 9) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days: NDArray[np.int64] = era * 146_097 + doe - 719_468
    return days


def _prices_ok(values: NDArray[np.float64]) -> NDArray[np.bool_]:
    """The row parser's checks: finite, prices > 0, volume >= 0, low <= open, close <= high."""
    o, h, low, c, volume = values.T
    finite = np.all(np.isfinite(values), axis=1)
    positive = (o > 0) & (h > 0) & (low > 0) & (c > 0) & (volume >= 0)
    bounded = (h >= np.maximum(np.maximum(o, c), low)) & (low <= np.minimum(o, c))
    ok: NDArray[np.bool_] = finite & positive & bounded
    return ok


def _quote_digits(
    taken: list[tuple[int, re.Match[str] | None]], counted: dict[int, list[int]]
) -> int:
    """``Counter(decimals).most_common(1)`` of the row parser: ties go to the first seen value.

    ``taken``: (row, match) of the lines parsed in bulk; ``counted``: the others' decimals.
    """
    columns = list(zip(*(m.groups()[1:5] for _, m in taken if m is not None), strict=True))
    bulk = np.stack([_decimals_of(c) for c in columns], axis=1) if columns else None
    rows = np.asarray([row for row, _ in taken] + list(counted), dtype=np.int64)
    decimals = np.asarray(list(counted.values()), dtype=np.int64).reshape(-1, 4)
    if bulk is not None:
        decimals = np.concatenate([bulk, decimals])
    order = np.argsort(rows, kind="stable")
    return _most_common(decimals[order].reshape(-1))  # row by row, price by price


def _most_common(flat: NDArray[np.int64]) -> int:
    """``Counter(flat).most_common(1)[0][0]``: the most frequent value, ties to the first seen."""
    if flat.size == 0:
        return 0
    values, first, counts = np.unique(flat, return_index=True, return_counts=True)
    best = counts == counts.max()
    return int(values[best][np.argmin(first[best])])


def _decimals_of(column: tuple[str, ...]) -> NDArray[np.int64]:
    """Digits after the point of each number text (0 without a point), as ``_decimals``."""
    length = np.fromiter(map(len, column), np.int64, len(column))
    dot = np.fromiter(map(str.find, column, repeat(".")), np.int64, len(column))
    return np.where(dot >= 0, length - dot - 1, 0)


# --------------------------------------------------------------------------------------------
# The whole file at once: the common case of a clean export, no Python object per field

_TIME_LAYOUT = {
    # byte -> required punctuation (positions not named are digits), and the width
    "compact": ({8: b" "}, 15),
    "ymd": ({4: b"-", 7: b"-", 10: b" T", 13: b":", 16: b":"}, 19),
}


def _whole_file(
    text: str,
    *,
    sep: str,
    time_kind: str,
    header: bool,
    quoted: bool = False,
    with_spread: bool = False,
) -> RowArrays | None:
    """The whole file in a few numpy passes, or None when any line needs a closer look.

    Takes the file only if every line has exactly the columns read, a time in its exact layout,
    numbers ``float`` reads, and passes every check. Anything
    else (a blank line, a bad row, an odd line break, extra columns) returns None: the per-line
    path then finds and reports it exactly as the row parser does.
    """
    data = _plain_lines(text, header=header, quoted=quoted)
    if data is None:
        return None
    u8 = np.frombuffer(data.encode("ascii"), dtype=np.uint8)
    starts, seps = _line_layout(u8, sep, 6 if with_spread else 5)
    if starts is None or seps is None:
        return None
    first_sep = seps[:, 0]
    if time_kind == "epoch_s":
        time_ok = _all_digits(u8, starts, first_sep) & (first_sep - starts <= 12)
    else:
        time_ok = _fixed_time_ok(u8, starts, first_sep, time_kind)
    if not bool(np.all(time_ok)):
        return None
    table = _numbers(data, sep, len(starts), seps.shape[1] + 1, epoch=time_kind == "epoch_s")
    if table is None:
        return None  # some field is not a number: the row parser says which
    if time_kind == "epoch_s":
        # Whole seconds below 10**12 are exact in float64 (< 2**53).
        time_us = table[:, 0].astype(np.int64) * 1_000_000
        table = table[:, 1:]
    else:
        digits = u8[starts[:, None] + np.arange(_TIME_LAYOUT[time_kind][1])]
        time_us, calendar_ok = _calendar_us(digits.astype(np.int64) - ord("0"), time_kind)
        if not bool(np.all(calendar_ok)):
            return None
    n = len(starts)
    values = np.ascontiguousarray(table[:, 0:5])
    if not bool(np.all(_prices_ok(values))):
        return None
    spreads = np.full(n, np.nan)
    if with_spread:
        points = table[:, 5]
        decimals = _field_decimals(u8, seps)
        if decimals is None or not bool(np.all(np.isfinite(points) & (points >= 0))):
            return None
        spreads = points * 10.0 ** -_most_common(decimals.reshape(-1))
    first_row = 2 if header else 1
    return RowArrays(
        rows=np.arange(first_row, first_row + n, dtype=np.int64),
        time_us=time_us,
        prices=values,
        spreads=spreads,
    )


def _numbers(data: str, sep: str, n: int, width: int, *, epoch: bool) -> NDArray[np.float64] | None:
    """The numeric columns (the time too when ``epoch``) as ``(n, k)`` floats, or None.

    ``numpy.loadtxt`` converts each field with ``PyOS_string_to_double`` after stripping ASCII
    whitespace, which is what ``float`` does to ASCII text: whatever it reads, ``float`` reads
    to the same bits (``tests/backtest/test_bulk_parsers.py`` checks it on every bundled file).
    It reads in C, three times faster than ``float`` mapped over the fields.
    """
    first = 0 if epoch else 1
    try:
        table = np.loadtxt(
            io.StringIO(data),
            delimiter=sep,
            usecols=range(first, width),
            comments=None,
            dtype=np.float64,
            ndmin=2,
        )
    except ValueError:
        return None
    return table if table.shape == (n, width - first) else None


# Bytes after which str.splitlines also breaks a line (besides "\n"; "\r\n" is folded first).
_ODD_BREAK = np.zeros(256, dtype=bool)
_ODD_BREAK[[0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E]] = True


def _plain_lines(text: str, *, header: bool, quoted: bool) -> str | None:
    """The data lines joined by "\n" (header dropped, quotes stripped), if plainly ASCII."""
    if not text.isascii():  # also rules out the non-ASCII line breaks (\x85, \u2028, ...)
        return None
    data = text.replace("\r\n", "\n")
    if header:
        cut = data.find("\n")
        if cut < 0:
            return None
        data = data[cut + 1 :]
    data = data.removesuffix("\n")
    if not data or bool(np.any(_ODD_BREAK[np.frombuffer(data.encode("ascii"), np.uint8)])):
        return None
    return _unquoted(data) if quoted else data


def _line_layout(
    u8: NDArray[np.uint8], sep: str, n_seps: int
) -> tuple[NDArray[np.int64] | None, NDArray[np.int64] | None]:
    """Line starts and the ``(n, n_seps)`` separator positions, if every line has exactly that."""
    breaks = np.flatnonzero(u8 == ord("\n"))
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(u8)]])
    n = len(starts)
    found = np.flatnonzero(u8 == ord(sep))
    if len(found) != n * n_seps:
        return None, None
    seps = found.reshape(n, n_seps)
    # As many separators as lines times n_seps, and each line's first and last inside it:
    # then every line holds exactly n_seps.
    if np.any(seps[:, 0] < starts) or np.any(seps[:, -1] >= ends):
        return None, None
    return starts, seps


def _unquoted(data: str) -> str | None:
    """Every line wrapped in one pair of double quotes -> the lines without them (else None)."""
    lines = data.count("\n") + 1
    if data.count('"') != 2 * lines or not data.startswith('"') or not data.endswith('"'):
        return None
    if data.count('"\n"') != lines - 1:
        return None
    return data.replace('"', "")


def _all_digits(
    u8: NDArray[np.uint8], starts: NDArray[np.int64], stops: NDArray[np.int64]
) -> NDArray[np.bool_]:
    """Per line: is ``u8[start:stop]`` non-empty and ASCII digits only?"""
    others = np.flatnonzero((u8 < ord("0")) | (u8 > ord("9")))
    ok: NDArray[np.bool_] = (stops > starts) & (_count_in(others, starts, stops) == 0)
    return ok


def _count_in(
    positions: NDArray[np.int64], starts: NDArray[np.int64], stops: NDArray[np.int64]
) -> NDArray[np.int64]:
    """How many of the sorted ``positions`` lie in each ``[start, stop)``."""
    return np.searchsorted(positions, stops) - np.searchsorted(positions, starts)


def _fixed_time_ok(
    u8: NDArray[np.uint8], starts: NDArray[np.int64], first_sep: NDArray[np.int64], kind: str
) -> NDArray[np.bool_]:
    """Per line: the time field is exactly the fixed layout of ``kind`` (digits, punctuation)."""
    punctuation, width = _TIME_LAYOUT[kind]
    ok: NDArray[np.bool_] = first_sep - starts == width
    chars = u8[np.minimum(starts[:, None] + np.arange(width), len(u8) - 1)]
    for k in range(width):
        allowed = punctuation.get(k)
        column = chars[:, k]
        if allowed is None:
            ok &= (column >= ord("0")) & (column <= ord("9"))
        else:
            ok &= np.isin(column, np.frombuffer(allowed, dtype=np.uint8))
    return ok


def _field_decimals(u8: NDArray[np.uint8], seps: NDArray[np.int64]) -> NDArray[np.int64] | None:
    """Digits after the point in the open/high/low/close texts, ``(n, 4)``, as ``_decimals``.

    None unless those texts are digits and at most one point (what ``_decimals`` reads plainly).
    """
    dots = np.flatnonzero(u8 == ord("."))
    digit = (u8 >= ord("0")) & (u8 <= ord("9"))
    others = np.flatnonzero(~digit & (u8 != ord(".")))
    out = np.empty((len(seps), 4), dtype=np.int64)
    for k in range(4):
        start, stop = seps[:, k] + 1, seps[:, k + 1]  # field k + 1
        if np.any(_count_in(others, start, stop) != 0) or np.any(_count_in(dots, start, stop) > 1):
            return None
        last = np.searchsorted(dots, stop) - 1  # the last point before the field's end
        dot = dots[np.maximum(last, 0)] if dots.size else np.full(len(seps), -1)
        out[:, k] = np.where((last >= 0) & (dot >= start), stop - dot - 1, 0)
    return out
