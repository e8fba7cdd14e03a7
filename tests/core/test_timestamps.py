"""Timestamp parsing: every real format to UTC-aware; naive and garbage are errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autolearn.core.timestamps import (
    TimestampError,
    format_utc,
    from_epoch_us,
    parse_utc,
    to_epoch_us,
)


class TestParseUtc:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            # trades_latest.csv: space separator, nanoseconds (truncated, not rounded)
            ("2025-10-14 23:48:15.435178901+00:00", datetime(2025, 10, 14, 23, 48, 15, 435178)),
            # trades_home.db: T separator, microseconds
            ("2025-10-23T02:30:37.368381+00:00", datetime(2025, 10, 23, 2, 30, 37, 368381)),
            # isoformat() drops the fraction when microsecond == 0
            ("2025-10-23T02:30:37+00:00", datetime(2025, 10, 23, 2, 30, 37)),
            # OANDA v20 RFC3339 with nanoseconds and Z
            ("2025-10-23T02:30:37.368381123Z", datetime(2025, 10, 23, 2, 30, 37, 368381)),
            # an offset other than UTC is converted, not dropped
            ("2025-10-23T11:30:37+09:00", datetime(2025, 10, 23, 2, 30, 37)),
            ("2025-10-23T02:30:37.5-0130", datetime(2025, 10, 23, 4, 0, 37, 500000)),
        ],
    )
    def test_real_formats(self, text: str, expected: datetime) -> None:
        """Each format found in the real data parses to the same UTC instant."""
        assert parse_utc(text) == expected.replace(tzinfo=UTC)
        assert parse_utc(text).tzinfo is UTC

    @pytest.mark.parametrize(
        "text",
        [
            "2025-10-23 02:30:37",
            "2025-10-23T02:30:37.123",
            "",
            "yesterday",
            "2025-13-01T00:00Z",
            "2025-10-23T02:30:37+25:00",
            "1761186637",
        ],
    )
    def test_rejects_naive_and_garbage(self, text: str) -> None:
        """A naive or malformed timestamp is an error, never a guess."""
        with pytest.raises(TimestampError):
            parse_utc(text)

    def test_naive_datetime_rejected(self) -> None:
        """A naive datetime object is refused like a naive string."""
        with pytest.raises(TimestampError, match="naive"):
            parse_utc(datetime(2025, 1, 1))


@given(st.datetimes(timezones=st.just(UTC), min_value=datetime(1971, 1, 1)))
def test_round_trips(value: datetime) -> None:
    """format -> parse and epoch-us -> datetime are exact inverses."""
    assert parse_utc(format_utc(value)) == value
    assert from_epoch_us(to_epoch_us(value)) == value


@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)),
    st.integers(min_value=-12 * 60, max_value=14 * 60),
)
def test_offsets_denote_the_same_instant(value: datetime, offset_min: int) -> None:
    """A timestamp rendered at any offset parses to the same UTC instant."""
    tz = timezone(timedelta(minutes=offset_min))
    aware = value.replace(tzinfo=tz)
    assert parse_utc(aware.isoformat()) == aware.astimezone(UTC)
    assert parse_utc(aware.isoformat(sep=" ")) == aware.astimezone(UTC)


def test_an_offset_that_leaves_the_representable_range_is_a_timestamp_error() -> None:
    """0001-01-01T00:00+01:00 is before year 1 in UTC: a TimestampError, not an OverflowError."""
    with pytest.raises(TimestampError, match="outside the representable range"):
        parse_utc("0001-01-01T00:00:00+01:00")
