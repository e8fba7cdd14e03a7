"""check_candles: bad feeds are named with stable codes; normal weekends and holidays are not."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest

from autolearn.backtest import Candles
from autolearn.counterfactual.candle_checks import check_candles

MIN = 60_000_000
HOUR = 60 * MIN


def _week_times(start: datetime, weeks: int, shift_h: float = 0.0) -> np.ndarray:
    """M1 open times of the FX week (Sunday 22:00 to Friday 22:00 UTC), shifted by ``shift_h``."""
    sunday = int(start.timestamp()) * 1_000_000  # start must be a Sunday 00:00 UTC
    out = []
    for w in range(weeks):
        lo = sunday + w * 7 * 24 * HOUR + 22 * HOUR
        out.append(np.arange(lo, lo + 5 * 24 * HOUR, MIN, dtype=np.int64))
    return np.concatenate(out) + int(shift_h * HOUR)


SUNDAY = datetime(2026, 3, 1, tzinfo=UTC)


def _codes(found: tuple[tuple[str, str], ...]) -> list[str]:
    return [code for code, _ in found]


class TestCleanFeed:
    def test_two_full_weeks_with_weekends_are_fine(
        self, make_candles: Callable[..., Candles]
    ) -> None:
        """A UTC M1 feed over two weekends and a few skipped minutes: no finding."""
        t = _week_times(SUNDAY, 3)
        t = np.delete(t, [100, 101, 102, 5000])  # tickless minutes are normal
        candles = make_candles(t.size, times=t)
        assert check_candles(candles, expected_timeframe_s=60) == ()

    def test_christmas_closure_is_not_a_hole(self) -> None:
        """No bars on 25 December (a Friday in 2026): not a gap inside trading hours."""
        t = _week_times(datetime(2026, 12, 20, tzinfo=UTC), 2)
        day = 86_400 * 1_000_000
        xmas = int(datetime(2026, 12, 24, 21, tzinfo=UTC).timestamp()) * 1_000_000
        t = t[(t < xmas) | (t >= xmas + day + 3 * HOUR)]
        assert check_candles(t, expected_timeframe_s=60) == ()


class TestFindings:
    def test_new_york_clock_read_as_utc(self, make_candles: Callable[..., Candles]) -> None:
        """Bars 4 h early put Sunday's open at 18:00 'UTC': candle_clock."""
        t = _week_times(SUNDAY, 3, shift_h=-4)
        found = check_candles(make_candles(t.size, times=t), expected_timeframe_s=60)
        assert _codes(found)[0] == "candle_clock"  # (its Friday close also leaves a 2 h hole)
        assert "weekend" in found[0][1]

    def test_eet_clock_read_as_utc(self) -> None:
        """Bars 2 h late run on into Friday 23:59 'UTC': candle_clock."""
        assert _codes(check_candles(_week_times(SUNDAY, 2, 2), expected_timeframe_s=60)) == [
            "candle_clock"
        ]

    def test_half_hour_offset_on_h1(self) -> None:
        """H1 bars at :30 are on an offset clock."""
        t = np.arange(0, 500, dtype=np.int64) * HOUR + 1_772_409_600_000_000 + 30 * MIN
        assert "candle_clock" in _codes(check_candles(t, expected_timeframe_s=3600))

    def test_hole_inside_trading_hours(self, make_candles: Callable[..., Candles]) -> None:
        """Three hours missing on a Wednesday: candles_gap naming the hole."""
        t = _week_times(SUNDAY, 1)
        wed = int(datetime(2026, 3, 4, 10, tzinfo=UTC).timestamp()) * 1_000_000
        t = t[(t < wed) | (t >= wed + 3 * HOUR)]
        found = check_candles(make_candles(t.size, times=t), expected_timeframe_s=60)
        assert _codes(found) == ["candles_gap"]
        assert "2026-03-04T10:00:00Z" in found[0][1]

    def test_hole_across_a_weekend_counts_only_trading_time(self) -> None:
        """Friday 12:00 to Monday 06:00 missing: 17 h of trading time, a gap."""
        t = _week_times(SUNDAY, 2)
        fri = int(datetime(2026, 3, 6, 12, tzinfo=UTC).timestamp()) * 1_000_000
        mon = int(datetime(2026, 3, 9, 6, tzinfo=UTC).timestamp()) * 1_000_000
        t = t[(t < fri) | (t >= mon)]
        found = check_candles(t, expected_timeframe_s=60)
        assert _codes(found) == ["candles_gap"]

    @pytest.mark.parametrize(
        ("times", "code"),
        [
            (np.array([0, 2, 1, 3], dtype=np.int64) * MIN, "candles_unsorted"),
            (np.array([0, 1, 1, 2], dtype=np.int64) * MIN, "candles_duplicate"),
        ],
    )
    def test_raw_arrays_out_of_order_or_repeated(self, times: np.ndarray, code: str) -> None:
        """Raw open times are checked as given (the Candles type would refuse them)."""
        found = check_candles(times + 1_772_409_600_000_000, expected_timeframe_s=60, min_bars=2)
        assert code in _codes(found)

    def test_too_few_bars_and_wrong_timeframe(self, make_candles: Callable[..., Candles]) -> None:
        """50 M5 bars when M1 is expected: candles_too_few and candles_timeframe."""
        candles = make_candles(50, step_us=5 * MIN)
        assert _codes(check_candles(candles, expected_timeframe_s=60)) == [
            "candles_too_few",
            "candles_timeframe",
        ]
