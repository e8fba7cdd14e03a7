"""Can these candles carry a counterfactual? Findings as stable reason codes, never exceptions.

A counterfactual is only as good as the bars it is simulated on. Each finding is
``(code, detail)``; the tuner turns any finding into a family freeze (nothing moves):

* ``candles_too_few``: fewer than ``min_bars`` bars;
* ``candles_unsorted`` / ``candles_duplicate``: bar times out of order or repeated (the
  ``Candles`` type refuses both; raw open-time arrays are checked as given);
* ``candles_timeframe``: the bar length is not the expected one;
* ``candle_clock``: the feed is on another clock: bars inside the FX weekend (Friday 22:00 to
  Sunday 21:00 UTC, when no market trades in any season), or bar times off the bar grid (a
  half-hour clock offset puts M1 bars on the minute but H1 bars at :30);
* ``candles_gap``: a hole longer than ``max_gap_s`` inside trading hours. The weekend (Friday
  20:00 to Sunday 23:00 UTC, wide enough for either DST season and late-opening feeds) and the
  25 December / 1 January closures are normal, not holes. Short holes are normal too: M1 feeds
  skip minutes without ticks.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from autolearn.backtest.candles import Candles

__all__ = [
    "CANDLES_DUPLICATE",
    "CANDLES_GAP",
    "CANDLES_TIMEFRAME",
    "CANDLES_TOO_FEW",
    "CANDLES_UNSORTED",
    "CANDLE_CLOCK",
    "check_candles",
    "trading_time",
]

CANDLES_TOO_FEW = "candles_too_few"
CANDLES_UNSORTED = "candles_unsorted"
CANDLES_DUPLICATE = "candles_duplicate"
CANDLES_TIMEFRAME = "candles_timeframe"
CANDLE_CLOCK = "candle_clock"
CANDLES_GAP = "candles_gap"

_S = 1_000_000
_H = 3600 * _S
_DAY = 24 * _H
_WEEK = 7 * _DAY
_MONDAY = 4 * _DAY  # 1970-01-05, a Monday, as epoch us: weeks are counted from Mondays 00:00
# No market anywhere: after Friday's latest close (22:00 UTC in winter) to Sunday's earliest open.
_CLOSED = (4 * _DAY + 22 * _H, 6 * _DAY + 21 * _H)
# A hole inside this window is the normal weekend (wider: either season, late feeds).
_WEEKEND = (4 * _DAY + 20 * _H, 6 * _DAY + 23 * _H)
_CLOCK_MIN_BARS = 5  # a stray bar or two in the weekend (a broker's test tick) is not a clock
_CLOCK_SHARE = 0.0005


def check_candles(
    candles: Candles | NDArray[np.int64],
    *,
    expected_timeframe_s: int,
    min_bars: int = 100,
    max_gap_s: float = 3600.0,
) -> tuple[tuple[str, str], ...]:
    """Every finding about ``candles`` (a ``Candles`` or raw bar open times, UTC epoch us).

    An empty tuple means the candles can be used.
    """
    if isinstance(candles, Candles):
        times, timeframe_s = candles.time_us, candles.timeframe_s
    else:
        times, timeframe_s = np.asarray(candles, dtype=np.int64), None
    tf_us = int(expected_timeframe_s) * _S
    found: list[tuple[str, str]] = []
    if times.size < min_bars:
        found.append((CANDLES_TOO_FEW, f"{times.size} bars < {min_bars}"))
    steps = np.diff(times)
    if np.any(steps < 0):
        k = int(np.flatnonzero(steps < 0)[0])
        found.append(
            (
                CANDLES_UNSORTED,
                f"{np.count_nonzero(steps < 0)} bars out of order, "
                f"first at index {k + 1} ({_iso(times[k + 1])} after {_iso(times[k])})",
            )
        )
    if np.any(steps == 0):
        k = int(np.flatnonzero(steps == 0)[0])
        found.append(
            (
                CANDLES_DUPLICATE,
                f"{np.count_nonzero(steps == 0)} repeated bar times, "
                f"first {_iso(times[k])} at index {k + 1}",
            )
        )
    found.extend(_timeframe(times, timeframe_s, expected_timeframe_s))
    found.extend(_clock(times, tf_us))
    if not any(code in (CANDLES_UNSORTED, CANDLES_DUPLICATE) for code, _ in found):
        found.extend(_gaps(times, tf_us, max_gap_s))
    return tuple(found)


def _timeframe(
    times: NDArray[np.int64], declared: int | None, expected: int
) -> list[tuple[str, str]]:
    if declared is not None and declared != expected:
        return [(CANDLES_TIMEFRAME, f"bars are {declared} s long, expected {expected} s")]
    steps = np.diff(times)
    steps = steps[steps > 0]
    if steps.size:
        values, counts = np.unique(steps, return_counts=True)
        common = int(values[np.argmax(counts)]) // _S
        if common != expected:
            return [
                (CANDLES_TIMEFRAME, f"the usual bar spacing is {common} s, expected {expected} s")
            ]
    return []


def _clock(times: NDArray[np.int64], tf_us: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if times.size == 0:
        return out
    week_pos = (times - _MONDAY) % _WEEK
    closed = (week_pos >= _CLOSED[0]) & (week_pos < _CLOSED[1])
    n_closed = int(np.count_nonzero(closed))
    if n_closed > max(_CLOCK_MIN_BARS, _CLOCK_SHARE * times.size):
        first = _iso(times[np.flatnonzero(closed)[0]])
        out.append(
            (
                CANDLE_CLOCK,
                f"{n_closed} bars fall in the FX weekend (Friday 22:00 to "
                f"Sunday 21:00 UTC), first {first}: the feed is not on UTC",
            )
        )
    off = times % tf_us != 0
    if tf_us <= _H and np.count_nonzero(off) > _CLOCK_SHARE * times.size:
        first = _iso(times[np.flatnonzero(off)[0]])
        out.append(
            (
                CANDLE_CLOCK,
                f"{np.count_nonzero(off)} bars do not start on the "
                f"{tf_us // _S} s grid, first {first}: the feed is on an offset clock",
            )
        )
    return out


def _gaps(times: NDArray[np.int64], tf_us: int, max_gap_s: float) -> list[tuple[str, str]]:
    if times.size < 2:
        return []
    starts = times[:-1] + tf_us  # the hole runs from a bar's close to the next bar's open
    holes = times[1:] - starts
    big = np.flatnonzero(holes > max_gap_s * _S)
    bad = [
        (int(starts[k]), int(times[k + 1]), trading)
        for k in big
        if (trading := _trading_us(int(starts[k]), int(times[k + 1]))) > max_gap_s * _S
    ]
    if not bad:
        return []
    a, b, trading = max(bad, key=lambda g: g[2])
    return [
        (
            CANDLES_GAP,
            f"{len(bad)} holes over {max_gap_s:g} s inside trading hours; the "
            f"longest {_iso(a)} to {_iso(b)} ({trading / _H:.1f} h of trading time)",
        )
    ]


def trading_time(start: datetime, end: datetime) -> timedelta:
    """How much of ``[start, end)`` the FX market is open (weekends and the Christmas / New
    Year closures left out): a signal log quiet over a weekend is not stale."""
    a = int(start.timestamp() * _S)
    b = int(end.timestamp() * _S)
    return timedelta(microseconds=max(0, _trading_us(a, b))) if b > a else timedelta(0)


def _trading_us(a: int, b: int) -> int:
    """The part of ``[a, b)`` outside the weekend and the Christmas / New Year closures."""
    closed = _overlap_weekend(a, b)
    for year in range(_year(a) - 1, _year(b) + 1):
        for month, day in ((12, 24), (12, 31)):  # from 20:00 the evening before, for 28 hours
            lo = int(datetime(year, month, day, 20, tzinfo=UTC).timestamp()) * _S
            hi = lo + 28 * _H
            # a closure inside the weekend window is already counted
            closed += max(0, min(b, hi) - max(a, lo)) - _overlap_weekend(max(a, lo), min(b, hi))
    return (b - a) - closed


def _overlap_weekend(a: int, b: int) -> int:
    if b <= a:
        return 0
    total = 0
    week = (a - _MONDAY) // _WEEK
    while _MONDAY + week * _WEEK < b:
        lo, hi = (_MONDAY + week * _WEEK + w for w in _WEEKEND)
        total += max(0, min(b, hi) - max(a, lo))
        week += 1
    return total


def _year(us: int) -> int:
    return datetime.fromtimestamp(us / _S, tz=UTC).year


def _iso(us: int | np.int64) -> str:
    return datetime.fromtimestamp(int(us) / _S, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
