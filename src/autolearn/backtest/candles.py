"""Candles: one value for every candle source, in true UTC, sorted and de-duplicated.

``load_candles(path)`` detects the format from the file's content (``fmt=`` overrides), parses it
(``_parsers``; the text formats vectorised by ``_bulk``, equal bit for bit), converts the source
clock to UTC (``_clock``; see the data README), sorts, drops
exact duplicate rows, and refuses conflicting duplicates (same bar time, different values).
A bad row raises :class:`~autolearn.errors.InputError` naming the file, row and column, unless
``errors="report"``, which loads the good rows and returns the rejected ones beside them.

A source that carries a spread fills ``spread_pips`` (MT5 tb-logs' ``spread`` column in points,
an OANDA body with bid and ask); a mid-only source leaves it None. Arrays are numpy (no pandas
in ``src``) and read-only. This module reads the file it is given and nothing else; it must not
guess a clock for a naive timestamp outside the formats below.

Clocks: HistData is New York time, tb-logs' epoch export the EU-calendar server clock
(``mt5-eet``), backtesting.py UTC. The ``Time,Open,...`` MT5 exports (quoted or plain) come
from any broker, so their clock is inferred from where the weeks open and close
(``_clock.infer_clock``); a file that cannot tell (no weekend, or a tie) is refused with the
candidate clocks named. ``clock=`` (``--clock``) overrides every default.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal, overload

import numpy as np
from numpy.typing import NDArray

from autolearn.backtest import _clock
from autolearn.backtest._bulk import RowArrays, bulk_delimited, bulk_histdata, row_arrays
from autolearn.backtest._parsers import (
    RawRows,
    RejectedRow,
    parse_factor_cache,
    parse_oanda_json,
)
from autolearn.core.model import pip_size
from autolearn.errors import InputError

__all__ = [
    "HADIFOROUGHI_UTC_OFFSET_H",
    "HISTDATA_EST_OFFSET_H",
    "CandleFormat",
    "Candles",
    "LoadReport",
    "RejectedRow",
    "candles_from_rows",
    "detect_format",
    "load_candles",
]

# HistData.com's stated convention (EST, no DST). The data disagrees (see _clock), so the loader
# defaults to New York time with DST; pass histdata_utc_offset_h=HISTDATA_EST_OFFSET_H to use it.
HISTDATA_EST_OFFSET_H = -5.0
# The README's analysis said UTC-4; the prices say UTC-3:30 in every month (see _clock), and
# the loader now infers it from the week open (mt5_utc_offset_h=None) rather than assuming it.
HADIFOROUGHI_UTC_OFFSET_H = -3.5
_CURRENCIES = frozenset(
    (
        "EUR",
        "USD",
        "JPY",
        "GBP",
        "AUD",
        "NZD",
        "CAD",
        "CHF",
        "SEK",
        "NOK",
        "DKK",
        "SGD",
        "HKD",
        "CNH",
        "MXN",
        "ZAR",
        "TRY",
        "PLN",
        "HUF",
        "CZK",
        "XAU",
        "XAG",
    )
)
_PAIR = re.compile(r"(?<![A-Z])([A-Z]{3})[_/]?([A-Z]{3})(?![A-Z])")


class CandleFormat(StrEnum):
    """Every candle format found in shared/data/fx (plus OANDA's own API body)."""

    HISTDATA = "histdata"  # YYYYMMDD HHMMSS;o;h;l;c;v, New York clock (see _clock)
    MT5_QUOTED = "mt5-quoted"  # hadiforoughi original: "Time\tOpen..." quoted, tab, CRLF
    MT5_CSV = "mt5-csv"  # hadiforoughi .converted.csv: Time,Open,...
    MT5_EPOCH = "mt5-epoch"  # tb-logs: time (server-clock epoch s),open,...,tick_volume,spread
    BACKTESTING_PY = "backtesting-py"  # ,Open,High,Low,Close,Volume (UTC)
    OANDA_JSON = "oanda-json"  # {"candles": [{"time", "mid": {o,h,l,c}, "volume", "complete"}]}
    FACTOR_CACHE = "factor-cache"  # QuantRabbit {"M1": {"candles": [...]}, ...} (UTC, mid)


@dataclass(frozen=True, slots=True, kw_only=True)
class Candles:
    """OHLCV bars of one instrument: ``time_us`` is the bar's open, UTC epoch microseconds.

    Invariants (checked): equal-length 1-D arrays, strictly increasing time, finite prices with
    ``low <= open, close <= high``, and a spread (when given) finite and >= 0 on every bar.
    Arrays are made read-only so the value stays frozen.
    """

    instrument: str
    timeframe_s: int
    time_us: NDArray[np.int64]
    open: NDArray[np.float64]
    high: NDArray[np.float64]
    low: NDArray[np.float64]
    close: NDArray[np.float64]
    volume: NDArray[np.float64]
    source: str = ""
    # Per bar, in pips (ask close - bid close, or the source's own spread column); None when
    # the source has mid (or one side) only. The counterfactual costs each fill with it.
    spread_pips: NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        n = len(self.time_us)
        names = ("time_us", "open", "high", "low", "close", "volume")
        for name in (*names, "spread_pips") if self.spread_pips is not None else names:
            dtype = np.int64 if name == "time_us" else np.float64
            arr = np.ascontiguousarray(getattr(self, name), dtype=dtype)
            if arr.ndim != 1 or len(arr) != n:
                raise ValueError(f"{name} must be 1-D with {n} values, got shape {arr.shape}")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        spread = self.spread_pips
        if spread is not None and not bool(np.all(np.isfinite(spread) & (spread >= 0))):
            bad = int(np.flatnonzero(~(np.isfinite(spread) & (spread >= 0)))[0])
            raise ValueError(
                f"spread_pips must be finite and >= 0, got {float(spread[bad])!r} at bar {bad}"
            )
        if self.timeframe_s <= 0:
            raise ValueError(f"timeframe_s must be > 0, got {self.timeframe_s!r}")
        if n > 1 and not bool(np.all(np.diff(self.time_us) > 0)):
            raise ValueError("time_us must be strictly increasing")
        if not (
            np.all(self.high >= np.maximum(self.open, self.close))
            and np.all(self.low <= np.minimum(self.open, self.close))
        ):
            raise ValueError("every bar needs low <= open, close <= high")

    def __len__(self) -> int:
        return len(self.time_us)

    @property
    def pip(self) -> float:
        """One pip of this instrument in price units (0.01 for JPY quotes, else 0.0001)."""
        return pip_size(self.instrument)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadReport:
    """What ``errors="report"`` returns: the candles plus every row that was left out."""

    candles: Candles
    fmt: CandleFormat
    rejected: tuple[RejectedRow, ...]
    duplicates_dropped: int
    incomplete_dropped: int
    clock: str = ""  # the source clock the times were read on (``utc`` for zoned formats)


def detect_format(head: str) -> CandleFormat:
    """Name the format from the first characters of a file (raises InputError if unknown)."""
    stripped = head.lstrip("\ufeff \t\r\n")
    first = stripped.split("\n", 1)[0].rstrip("\r")
    if stripped.startswith("{"):
        return CandleFormat.OANDA_JSON if '"candles"' in head[:200] else CandleFormat.FACTOR_CACHE
    if first.startswith('"') and "\t" in first:
        return CandleFormat.MT5_QUOTED
    lowered = first.replace(" ", "").lower()
    if lowered.startswith("time,open,high,low,close,tick_volume"):
        return CandleFormat.MT5_EPOCH
    if lowered.startswith("time,open,high,low,close"):
        return CandleFormat.MT5_CSV
    if lowered.startswith(",open,high,low,close"):
        return CandleFormat.BACKTESTING_PY
    if re.match(r"^\d{8} \d{6};", first):
        return CandleFormat.HISTDATA
    raise InputError(
        f"unrecognised candle format; first line {first[:80]!r}; "
        f"pass fmt= one of {[f.value for f in CandleFormat]}"
    )


@overload
def load_candles(
    path: str | Path,
    *,
    fmt: CandleFormat | str | None = ...,
    instrument: str | None = ...,
    timeframe_s: int | None = ...,
    errors: Literal["raise"] = ...,
    mt5_utc_offset_h: float | None = ...,
    histdata_utc_offset_h: float | None = ...,
    factor_timeframe: str = ...,
    clock: str | None = ...,
) -> Candles: ...


@overload
def load_candles(
    path: str | Path,
    *,
    fmt: CandleFormat | str | None = ...,
    instrument: str | None = ...,
    timeframe_s: int | None = ...,
    errors: Literal["report"],
    mt5_utc_offset_h: float | None = ...,
    histdata_utc_offset_h: float | None = ...,
    factor_timeframe: str = ...,
    clock: str | None = ...,
) -> LoadReport: ...


def load_candles(
    path: str | Path,
    *,
    fmt: CandleFormat | str | None = None,
    instrument: str | None = None,
    timeframe_s: int | None = None,
    errors: Literal["raise", "report"] = "raise",
    mt5_utc_offset_h: float | None = None,
    histdata_utc_offset_h: float | None = None,
    factor_timeframe: str = "M1",
    clock: str | None = None,
) -> Candles | LoadReport:
    """Load one candle file into :class:`Candles` (UTC, sorted, de-duplicated).

    Args:
        fmt: skip detection. ``instrument``: e.g. ``"EUR_USD"`` (else from the file or its name).
        timeframe_s: bar length (else from the file, or the most common gap between bars).
        errors: ``"raise"`` (first bad row -> InputError) or ``"report"`` (-> LoadReport).
        mt5_utc_offset_h: a fixed clock for the ``Time,Open,...`` MT5 exports; ``None``
            (default) infers it from the week open (the hadiforoughi files: UTC-3:30).
        histdata_utc_offset_h: ``None`` (default) reads HistData as New York time with DST; a
            number is a fixed offset (``-5.0`` is HistData's own "EST, no DST" claim).
        factor_timeframe: which section of a QuantRabbit factor_cache.json to load.
        clock: the file's clock (``_clock.parse_clock``: ``utc``, ``utc+2``, ``utc-3:30``,
            ``new-york``, ``mt5-server``, ``mt5-eet``) or ``auto`` (infer it); ``None`` keeps the
            format's default above. Formats with explicit zones (OANDA, factor cache) accept
            only ``utc``.

    Raises:
        InputError: also for an unknown ``clock`` and for a clock the data cannot settle.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read candle file: {exc}") from exc
    try:
        kind = CandleFormat(fmt) if fmt is not None else detect_format(text[:4096])
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from exc
    raw = _parse(path, text, kind, factor_timeframe)
    if raw.rejected and errors == "raise":
        bad = raw.rejected[0]
        raise InputError(
            f"{path}: row {bad.row}, column {bad.column}: {bad.reason} (value {bad.value!r}); "
            f"fix the row or load with errors='report' ({len(raw.rejected)} bad rows in all)"
        )
    local = raw.time_us
    source_clock = _clock_for(path, kind, clock, mt5_utc_offset_h, histdata_utc_offset_h)
    if source_clock is None:
        source_clock = _inferred_clock(path, local, kind)
    utc_rows = RowArrays(
        rows=raw.rows,
        time_us=np.asarray(source_clock.to_utc(local), dtype=np.int64),
        prices=raw.prices,
        spreads=raw.spreads,
    )
    candles, rejected, dups = _finish(path, utc_rows, errors == "report")
    rejected = [*raw.rejected, *rejected]
    result = _build(
        candles,
        instrument=_instrument(path, instrument, raw.instrument),
        timeframe_s=_timeframe(path, timeframe_s, raw.timeframe_s, candles[0]),
        source=str(path),
    )
    if errors == "raise":
        return result
    return LoadReport(
        candles=result,
        fmt=kind,
        rejected=tuple(sorted(rejected, key=lambda r: r.row)),
        duplicates_dropped=dups,
        incomplete_dropped=raw.incomplete_dropped,
        clock=source_clock.name,
    )


def candles_from_rows(
    raw: RawRows, *, instrument: str, timeframe_s: int, source: str, where: str
) -> tuple[Candles, list[RejectedRow], int]:
    """Rows already on the UTC clock -> sorted, de-duplicated ``Candles`` (the loader's rules).

    For feeds that are not files (the OANDA candles importer): conflicting duplicates are
    rejected (every version), exact ones dropped and counted. ``where`` names the input in
    messages. Returns the candles, the rejected rows and the number of exact duplicates.
    """
    candles, rejected, dups = _finish(Path(where), row_arrays(raw), True)
    built = _build(candles, instrument=instrument, timeframe_s=timeframe_s, source=source)
    return built, rejected, dups


def _build(
    candles: tuple[NDArray[np.int64], NDArray[np.float64]],
    *,
    instrument: str,
    timeframe_s: int,
    source: str,
) -> Candles:
    times, values = candles
    spread_price = values[:, 5]
    # A spread for every bar or none: a partial column would make costs differ by bar source.
    has_spread = len(times) > 0 and not bool(np.any(np.isnan(spread_price)))
    return Candles(
        instrument=instrument,
        timeframe_s=timeframe_s,
        time_us=times,
        open=values[:, 0],
        high=values[:, 1],
        low=values[:, 2],
        close=values[:, 3],
        volume=values[:, 4],
        source=source,
        spread_pips=np.round(spread_price / pip_size(instrument), 6) if has_spread else None,
    )


def _parse(path: Path, text: str, kind: CandleFormat, factor_timeframe: str) -> RowArrays:
    if kind in (CandleFormat.OANDA_JSON, CandleFormat.FACTOR_CACHE):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{path}: row {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"
            ) from exc
        if kind is CandleFormat.OANDA_JSON:
            return row_arrays(parse_oanda_json(doc))
        return row_arrays(parse_factor_cache(doc, factor_timeframe))
    # The text formats in bulk (``_bulk``: equal to the row parsers, tested bit for bit).
    if kind is CandleFormat.HISTDATA:
        return bulk_histdata(text)
    if kind is CandleFormat.MT5_QUOTED:
        return bulk_delimited(text, sep="\t", time_kind="ymd", quoted=True)
    if kind is CandleFormat.MT5_EPOCH:
        return bulk_delimited(text, sep=",", time_kind="epoch_s", spread_points=True)
    return bulk_delimited(text, sep=",", time_kind="ymd")


_ZONED = (CandleFormat.OANDA_JSON, CandleFormat.FACTOR_CACHE)


def _clock_for(
    path: Path,
    kind: CandleFormat,
    clock: str | None,
    mt5_offset: float | None,
    histdata_offset: float | None,
) -> _clock.SourceClock | None:
    """The clock to read ``kind`` on; None means "infer it from the data"."""
    if clock is not None and clock.strip().lower() == "auto":
        if kind in _ZONED:
            return _clock.SourceClock("utc", 0.0)
        return None
    if clock is not None:
        try:
            chosen = _clock.parse_clock(clock)
        except ValueError as exc:
            raise InputError(f"{path}: {exc}") from exc
        if kind in _ZONED and chosen.offset_h != 0:
            raise InputError(
                f"{path}: {kind.value} times carry their own zone; clock {clock!r} cannot apply "
                "(use utc or leave the clock unset)"
            )
        return chosen
    if kind is CandleFormat.HISTDATA:
        if histdata_offset is None:
            return _clock.SourceClock("new-york")
        return _clock.fixed_clock(histdata_offset)
    if kind in (CandleFormat.MT5_QUOTED, CandleFormat.MT5_CSV):
        return None if mt5_offset is None else _clock.fixed_clock(mt5_offset)
    if kind is CandleFormat.MT5_EPOCH:
        return _clock.SourceClock("mt5-eet")
    return _clock.SourceClock("utc", 0.0)  # backtesting.py (UTC by the README), zoned formats


def _inferred_clock(path: Path, local: NDArray[np.int64], kind: CandleFormat) -> _clock.SourceClock:
    """Infer a naive file's clock or refuse it, naming the candidate clocks."""
    values, counts = np.unique(np.diff(np.unique(local)), return_counts=True)
    bar_s = int(values[np.argmax(counts)]) // 1_000_000 if values.size else 60
    found = _clock.infer_clock(local, max(1, bar_s))
    if found.clock is not None:
        return found.clock
    named = ", ".join(f"{name} ({n}/{found.weekends} weekends)" for name, n in found.candidates)
    raise InputError(
        f"{path}: cannot tell the {kind.value} file's clock: {found.reason}; candidate clocks "
        f"{named}; pass clock= (--clock) one of {', '.join(_clock.CLOCK_NAMES)}"
    )


def _finish(
    path: Path, raw: RowArrays, report: bool
) -> tuple[tuple[NDArray[np.int64], NDArray[np.float64]], list[RejectedRow], int]:
    """Sort by time (stable), drop exact duplicates, refuse or reject conflicting ones."""
    times = raw.time_us
    # column 5: spread in price units (NaN: none)
    values = np.hstack([raw.prices, raw.spreads.reshape(-1, 1)])
    rows = raw.rows
    order = np.argsort(times, kind="stable")
    times, values, rows = times[order], values[order], rows[order]
    same_time = np.flatnonzero(times[1:] == times[:-1]) + 1  # later member of each equal pair
    a, b = values[same_time], values[same_time - 1]
    exact = np.all((a == b) | (np.isnan(a) & np.isnan(b)), axis=1)
    # A conflict poisons its whole time group: we cannot know which version is the true bar.
    conflict_times = np.unique(times[same_time[~exact]])
    rejected: list[RejectedRow] = []
    if conflict_times.size:
        bad = np.flatnonzero(np.isin(times, conflict_times))
        first = bad[0]
        others = [int(rows[i]) for i in bad if times[i] == times[first]][1:]
        if not report:
            raise InputError(
                f"{path}: row {rows[first]}, column time: conflicting duplicate bar at "
                f"{times[first]} us UTC (rows {others} hold other prices for it); remove the "
                f"wrong rows or load with errors='report' to drop every version of such bars"
            )
        rejected = [
            RejectedRow(
                row=int(rows[i]),
                column="time",
                value=str(int(times[i])),
                reason="conflicting duplicate bar: every version dropped",
            )
            for i in bad
        ]
    keep = np.ones(len(times), dtype=bool)
    keep[same_time[exact]] = False
    keep[np.isin(times, conflict_times)] = False
    dups = int(np.count_nonzero(exact))
    return (times[keep], values[keep]), rejected, dups


def _instrument(path: Path, given: str | None, from_file: str) -> str:
    if given:
        return given.replace("/", "_").upper()
    if from_file:
        return from_file
    for base, quote in _PAIR.findall(path.name.upper()):
        if base in _CURRENCIES and quote in _CURRENCIES:
            return f"{base}_{quote}"
    raise InputError(f"{path}: cannot tell the instrument from the file; pass instrument='EUR_USD'")


def _timeframe(path: Path, given: int | None, from_file: int, times: NDArray[np.int64]) -> int:
    if given:
        return int(given)
    if from_file:
        return from_file
    gaps = np.diff(times)
    if gaps.size == 0:
        raise InputError(f"{path}: fewer than 2 bars; pass timeframe_s=")
    values, counts = np.unique(gaps, return_counts=True)
    # The most common gap is the bar length: HistData skips tickless minutes, weekends are gaps.
    return max(1, int(values[np.argmax(counts)]) // 1_000_000)
