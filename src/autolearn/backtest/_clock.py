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

Pure: no clock. Inputs are "local wall-clock seconds read as if UTC" in microseconds. The only
read is the system's IANA time zone database, through ``zoneinfo``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "HOUR_US",
    "eu_dst_bounds_us",
    "fixed_offset_to_utc",
    "mt5_eet_to_utc",
    "new_york_to_utc",
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
