"""Source clocks to true UTC, vectorised over epoch-microsecond arrays.

Every candle source stamps bars on its own clock. What the data itself shows (measured by
correlating hourly returns of each source with the tb-logs H1 bars, and by the hour the FX week
opens, which is 17:00 New York time):

* MetaQuotes-style broker servers (tb-logs): EET, UTC+2 in winter and UTC+3 under the **EU** DST
  rule. The week always opens Monday 00:00 server time, and the weekend gap is 50 h instead of
  49 h exactly in the weeks where US DST has started but EU DST has not (and the autumn mirror).
* HistData.com ASCII: the data README (and HistData) say "EST, no DST", but the 2018 EUR/USD
  files open the week at 17:00 local in July as in January and match tb-logs hour by hour only
  as New York time with DST (return correlation 0.999 at UTC-4 in July, about 0 at UTC-5). So
  the default is New York time; a fixed offset stays available.
* The hadiforoughi MT5 export: the README's "fixed UTC-4" is off by half an hour. The week opens
  at 17:30 local in summer and 18:30 in winter, and every month from 2021-06 to 2022-02 matches
  tb-logs only at a fixed UTC-3:30 (correlation 0.995-0.999; 0.44-0.58 at UTC-4 or UTC-3).

New York's DST dates come from the IANA database (``zoneinfo``), because the US rule changed in
2007 (first Sunday of April to last Sunday of October before it): a fixed 2007 rule put 4,368 of
the 70,080 hours of 2001-2006 an hour off.

A ``Time,Open,...`` MT5 export says nothing of its broker, and brokers differ: the
hadiforoughi files are UTC-3:30, while the common MetaQuotes server clock (``mt5-server``) is
New York + 7 h, so the week opens Monday 00:00 server time (Sunday 21:00/22:00 UTC). Read as
UTC-3:30, such a file landed 5.5-6.5 h off. ``infer_clock`` places a naive file by its week
edges (open Sunday 17:00, close Friday 17:00 New York) over every candidate clock, and says
when the data cannot decide. On a UTC+2/+3 server the US and EU calendars differ only in the
three or four weeks a year when one has switched and the other not: the week-open rule picks
the US calendar (the NY-close convention: Monday 00:00 is always 17:00 New York), while the
tb-logs broker's EU reading rests on its Friday close in those weeks; its epoch export keeps
``mt5-eet`` unless ``--clock`` says otherwise.

Pure: no clock. Inputs are "local wall-clock seconds read as if UTC" in microseconds. The only
read is the system's IANA time zone database, through ``zoneinfo``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CLOCK_NAMES",
    "HOUR_US",
    "ClockInference",
    "SourceClock",
    "eu_dst_bounds_us",
    "fixed_clock",
    "fixed_offset_to_utc",
    "infer_clock",
    "mt5_eet_to_utc",
    "mt5_server_to_utc",
    "new_york_from_utc",
    "new_york_to_utc",
    "parse_clock",
    "us_dst_bounds_us",
]

HOUR_US = 3_600_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def fixed_offset_to_utc(local_us: NDArray[np.int64], offset_hours: float) -> NDArray[np.int64]:
    """UTC = local - offset, e.g. HistData (offset -5): 17:00 local is 22:00 UTC."""
    return local_us - np.int64(round(offset_hours * HOUR_US))


def _nth_sunday_utc(year: int, month: int, nth: int, hour_utc: int) -> int:
    """``nth`` Sunday of the month (``nth=-1``: the last) at ``hour_utc``, epoch microseconds."""
    if nth > 0:
        first = datetime(year, month, 1, hour_utc, tzinfo=UTC)
        day = first + timedelta(days=(6 - first.weekday()) % 7 + 7 * (nth - 1))
    else:
        first_next = datetime(year + (month == 12), month % 12 + 1, 1, hour_utc, tzinfo=UTC)
        last_day = first_next - timedelta(days=1)
        day = last_day - timedelta(days=(last_day.weekday() + 1) % 7)  # Monday 0 .. Sunday 6
    return (day - _EPOCH) // timedelta(microseconds=1)


def eu_dst_bounds_us(year: int) -> tuple[int, int]:
    """EU summer time of ``year`` as UTC ``[start, end)`` epoch microseconds (rule since 1996)."""
    return _nth_sunday_utc(year, 3, -1, 1), _nth_sunday_utc(year, 10, -1, 1)


@functools.lru_cache(maxsize=256)
def us_dst_bounds_us(year: int) -> tuple[int, int]:
    """New York daylight time of ``year`` as UTC ``[start, end)``, from the IANA database.

    Since 2007: second Sunday of March 07:00 UTC to first Sunday of November 06:00 UTC; 1987-2006:
    first Sunday of April to last Sunday of October. A year without daylight time (none since
    1945) is ``(start, start)``: never summer.
    """
    zone = ZoneInfo("America/New_York")

    def is_summer(us: int) -> bool:
        return bool((_EPOCH + timedelta(microseconds=us)).astimezone(zone).dst())

    day = 86_400 * 1_000_000
    jan1 = (datetime(year, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
    days = [jan1 + d * day for d in range(366)]  # 00:00 UTC of every day (and the next Jan 1)
    flags = [is_summer(us) for us in days]
    if not any(flags) or flags[0]:  # New York is never in daylight time on 1 January
        return jan1, jan1
    first = flags.index(True)
    last = len(flags) - 1 - flags[::-1].index(True)

    def switch(lo: int) -> int:
        """The first hour after ``lo`` whose summer flag differs from ``lo``'s."""
        state = is_summer(lo)
        return next(lo + h * HOUR_US for h in range(1, 25) if is_summer(lo + h * HOUR_US) != state)

    return switch(days[first - 1]), switch(days[last])


def _seasonal_to_utc(
    local_us: NDArray[np.int64], std_offset_h: int, bounds: Callable[[int], tuple[int, int]]
) -> NDArray[np.int64]:
    """Local wall clock with a one-hour summer shift to UTC.

    A local instant is read as summer time when ``local - (std + 1) h`` falls inside that year's
    summer interval, else as standard time. The hour that occurs twice each autumn resolves to
    its first (summer) occurrence and the spring hour that never occurs resolves as standard
    time; for both clocks used here that hour falls on a Sunday before the FX week opens.
    """
    summer = local_us - (std_offset_h + 1) * HOUR_US
    if local_us.size == 0:
        return local_us.copy()
    years = summer.astype("datetime64[us]").astype("datetime64[Y]").astype(np.int64) + 1970
    in_summer = np.zeros(local_us.shape, dtype=bool)
    for year in np.unique(years):
        start, end = bounds(int(year))
        mask = years == year
        in_summer[mask] = (summer[mask] >= start) & (summer[mask] < end)
    return np.where(in_summer, summer, local_us - std_offset_h * HOUR_US)


def mt5_eet_to_utc(server_us: NDArray[np.int64]) -> NDArray[np.int64]:
    """MetaQuotes-style broker server clock (UTC+2, UTC+3 in EU summer time) to true UTC."""
    return _seasonal_to_utc(server_us, 2, eu_dst_bounds_us)


def new_york_to_utc(local_us: NDArray[np.int64]) -> NDArray[np.int64]:
    """New York wall clock (EST UTC-5, EDT UTC-4 under the US rule) to true UTC."""
    return _seasonal_to_utc(local_us, -5, us_dst_bounds_us)


def new_york_from_utc(utc_us: NDArray[np.int64]) -> NDArray[np.int64]:
    """True UTC to New York wall clock (the inverse of :func:`new_york_to_utc`)."""
    if utc_us.size == 0:
        return utc_us.copy()
    years = utc_us.astype("datetime64[us]").astype("datetime64[Y]").astype(np.int64) + 1970
    in_summer = np.zeros(utc_us.shape, dtype=bool)
    for year in np.unique(years):
        start, end = us_dst_bounds_us(int(year))
        mask = years == year
        in_summer[mask] = (utc_us[mask] >= start) & (utc_us[mask] < end)
    return utc_us - 5 * HOUR_US + np.where(in_summer, HOUR_US, 0).astype(np.int64)


def mt5_server_to_utc(server_us: NDArray[np.int64]) -> NDArray[np.int64]:
    """The NY-close server clock (New York + 7 h: UTC+2, UTC+3 on the **US** DST calendar).

    The common MetaQuotes convention: the FX week opens at 17:00 New York, which this clock
    shows as Monday 00:00 all year, because it follows New York's DST dates.
    """
    return new_york_to_utc(server_us - 7 * HOUR_US)


@dataclass(frozen=True, slots=True)
class SourceClock:
    """A candle source's wall clock, by its canonical name.

    ``utc``, ``utc+2``, ``utc-3:30`` (fixed offsets), ``new-york`` (EST/EDT, US calendar),
    ``mt5-server`` (UTC+2/+3 on the US calendar, the NY-close convention) and ``mt5-eet``
    (UTC+2/+3 on the EU calendar, as the tb-logs broker). ``offset_h`` is set for fixed clocks.
    """

    name: str
    offset_h: float | None = None

    def to_utc(self, local_us: NDArray[np.int64]) -> NDArray[np.int64]:
        """Local wall-clock microseconds (read as if UTC) to true UTC microseconds."""
        if self.offset_h is not None:
            return fixed_offset_to_utc(local_us, self.offset_h)
        return _SEASONAL[self.name](local_us)


_SEASONAL: dict[str, Callable[[NDArray[np.int64]], NDArray[np.int64]]] = {
    "new-york": new_york_to_utc,
    "mt5-server": mt5_server_to_utc,
    "mt5-eet": mt5_eet_to_utc,
}
_FIXED = re.compile(r"^utc(?:([+-])(\d{1,2})(?::?(\d{2}))?)?$")
CLOCK_NAMES = ("auto", "utc", "utc+H[:MM]", "utc-H[:MM]", *_SEASONAL)


def _fixed_name(offset_h: float) -> str:
    if offset_h == 0:
        return "utc"
    minutes = round(abs(offset_h) * 60)
    hours, rest = divmod(minutes, 60)
    return f"utc{'+' if offset_h > 0 else '-'}{hours}" + (f":{rest:02d}" if rest else "")


def fixed_clock(offset_h: float) -> SourceClock:
    """The fixed-offset clock ``UTC + offset_h`` (e.g. ``-3.5`` is ``utc-3:30``)."""
    return SourceClock(_fixed_name(offset_h), offset_h)


def parse_clock(text: str) -> SourceClock:
    """``utc``, ``utc+2``, ``UTC-3:30``, ``new-york``, ``mt5-server``, ``mt5-eet`` -> clock.

    Raises:
        ValueError: an unknown name or an offset outside [-12, +14] h, naming the known ones.
    """
    spec = text.strip().lower().replace("_", "-")
    if spec in _SEASONAL:
        return SourceClock(spec)
    match = _FIXED.match(spec)
    if match:
        sign, hours, minutes = match.groups()
        offset = int(hours or 0) + int(minutes or 0) / 60
        offset = -offset if sign == "-" else offset
        if -12 <= offset <= 14 and int(minutes or 0) < 60:
            return fixed_clock(offset)
    raise ValueError(
        f"unknown clock {text!r}: expected one of {', '.join(CLOCK_NAMES)} "
        f"(fixed offsets from utc-12 to utc+14)"
    )


# --- inference: the FX week opens at Sunday 17:00 and closes at Friday 17:00 New York ---------

_MINUTE_US = 60_000_000
_WEEK_MIN = 7 * 1440
_SUNDAY_OPEN_MIN = 6 * 1440 + 17 * 60  # minute of the week (Monday 00:00 = 0), New York
_FRIDAY_CLOSE_MIN = 4 * 1440 + 17 * 60
# A weekend is a gap of 40-60 h; longer gaps are holidays, whose open says nothing regular.
_WEEKEND_GAP_US = (40 * HOUR_US, 60 * HOUR_US)
# The first bar may come a few minutes late (no ticks); a clock half an hour off must not fit.
_OPEN_TOLERANCE_MIN = 30
_CLOSE_TOLERANCE_MIN = 5  # a bar ending after Friday 17:00 New York is on the wrong clock
_MIN_FIT_SHARE = 0.8


def _candidates() -> tuple[SourceClock, ...]:
    """Named seasonal clocks first (preferred among equals), then every half-hour offset."""
    fixed = tuple(fixed_clock(h / 2) for h in range(-24, 29))
    return (SourceClock("mt5-server"), SourceClock("mt5-eet"), SourceClock("new-york"), *fixed)


@dataclass(frozen=True, slots=True)
class ClockInference:
    """What the week edges say about a file's clock: a decision with its evidence.

    ``clock`` is None when the data cannot decide; ``reason`` then says why and ``candidates``
    names the clocks still possible (or the best partial fits) with their fitting weekends.
    """

    clock: SourceClock | None
    weekends: int
    candidates: tuple[tuple[str, int], ...]
    reason: str


def _minute_of_week_ny(utc_us: NDArray[np.int64]) -> NDArray[np.int64]:
    ny_min = new_york_from_utc(utc_us) // _MINUTE_US
    days = ny_min // 1440
    return ((days + 3) % 7) * 1440 + ny_min % 1440  # 1970-01-01 was a Thursday (Monday = 0)


def _wrapped(delta: NDArray[np.int64]) -> NDArray[np.int64]:
    return (delta + _WEEK_MIN // 2) % _WEEK_MIN - _WEEK_MIN // 2


def _fitting_weekends(
    clock: SourceClock, local_us: NDArray[np.int64], gaps: NDArray[np.int64], bar_us: int
) -> int:
    utc = clock.to_utc(local_us)
    open_dev = _wrapped(_minute_of_week_ny(utc[gaps + 1]) - _SUNDAY_OPEN_MIN)
    close_dev = _wrapped(_FRIDAY_CLOSE_MIN - _minute_of_week_ny(utc[gaps] + bar_us))
    ok = (open_dev >= 0) & (open_dev < _OPEN_TOLERANCE_MIN) & (close_dev >= -_CLOSE_TOLERANCE_MIN)
    return int(np.count_nonzero(ok))


def infer_clock(local_us: NDArray[np.int64], bar_s: int) -> ClockInference:
    """Infer a naive file's clock from where its weeks open and close.

    The FX week opens at 17:00 New York on Sunday and closes at 17:00 on Friday, so on the right
    clock every weekend's first bar lies in ``[17:00, 17:30)`` New York and no bar ends after the
    Friday close. A clock fits a weekend when both hold; the clock fitting the most weekends
    wins if it fits at least 80 % of them. Ties between clocks that put the file's bars at the
    same UTC instants (UTC+2 and ``mt5-server`` on a winter-only file) are no ambiguity: the
    named clock is kept. Ties between clocks that disagree on some bar are refused.

    Args:
        local_us: sorted wall-clock microseconds as read from the file (as if UTC).
        bar_s: the bar length, for the end of the last bar before each weekend.
    """
    local_us = np.unique(np.asarray(local_us, dtype=np.int64))
    gap = np.diff(local_us)
    gaps = np.flatnonzero((gap >= _WEEKEND_GAP_US[0]) & (gap <= _WEEKEND_GAP_US[1]))
    if gaps.size == 0:
        common = ("utc", "utc-3:30", "mt5-server", "mt5-eet", "new-york")
        return ClockInference(
            clock=None,
            weekends=0,
            candidates=tuple((name, 0) for name in common),
            reason="no weekend in the data, so the week open cannot place the clock",
        )
    bar_us = bar_s * 1_000_000
    scored = [(c, _fitting_weekends(c, local_us, gaps, bar_us)) for c in _candidates()]
    best = max(n for _, n in scored)
    ranked = sorted(scored, key=lambda cn: -cn[1])
    if best < _MIN_FIT_SHARE * gaps.size:
        return ClockInference(
            clock=None,
            weekends=int(gaps.size),
            candidates=tuple((c.name, n) for c, n in ranked[:4]),
            reason=f"no clock opens and closes the week at 17:00 New York in "
            f"{_MIN_FIT_SHARE:.0%} of the {gaps.size} weekends",
        )
    tied = [c for c, n in scored if n == best]
    chosen = tied[0]
    reference = chosen.to_utc(local_us)
    rivals = [c for c in tied[1:] if not np.array_equal(c.to_utc(local_us), reference)]
    if rivals:
        return ClockInference(
            clock=None,
            weekends=int(gaps.size),
            candidates=tuple((c.name, best) for c in (chosen, *rivals)),
            reason=f"{len(rivals) + 1} clocks fit {best} of {gaps.size} weekends equally "
            "but place some bars differently",
        )
    return ClockInference(
        clock=chosen,
        weekends=int(gaps.size),
        candidates=tuple((c.name, n) for c, n in ranked[:4]),
        reason=f"{chosen.name} opens and closes the week at 17:00 New York in {best} of "
        f"{gaps.size} weekends",
    )
