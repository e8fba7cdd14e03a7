"""Timestamp parsing: every format found in the real data, to UTC-aware datetimes.

Accepted: ``T`` or a space between date and time; no fraction, or 1 to 9 fractional digits
(nanoseconds are truncated to microseconds, as OANDA and QuantRabbit did); ``Z``, ``+00:00``,
``+0900`` or any other explicit offset. A naive timestamp is an error, never a guess: the
original crashed or silently shifted windows on exactly these inputs (original-system.md 5.1).

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

__all__ = ["TimestampError", "format_utc", "from_epoch_us", "parse_utc", "to_epoch_us"]

_PATTERN = re.compile(
    r"^\s*(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}(?::\d{2})?)"
    r"(?:\.(?P<frac>\d{1,9}))?"
    r"\s*(?P<tz>Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?\s*$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TimestampError(ValueError):
    """A timestamp is missing its offset or is not a timestamp at all."""


def parse_utc(value: str | datetime) -> datetime:
    """Parse ``value`` into a UTC-aware datetime.

    Raises:
        TimestampError: the value is naive (no offset) or not a recognised timestamp.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise TimestampError(f"naive datetime {value.isoformat()!r} has no UTC offset")
        return value.astimezone(UTC)
    if not isinstance(value, str):
        raise TimestampError(f"expected a timestamp string, got {type(value).__name__}")
    match = _PATTERN.match(value)
    if match is None:
        raise TimestampError(f"not a timestamp: {value!r}")
    tz = match.group("tz")
    if tz is None:
        raise TimestampError(f"naive timestamp {value!r}: add an offset such as Z or +00:00")
    time_part = match.group("time")
    if len(time_part) == 5:
        time_part += ":00"
    frac = (match.group("frac") or "").ljust(6, "0")[:6]
    try:
        base = datetime.fromisoformat(f"{match.group('date')}T{time_part}")
    except ValueError as exc:
        raise TimestampError(f"invalid date or time in {value!r}: {exc}") from exc
    try:
        return base.replace(microsecond=int(frac), tzinfo=_offset(tz, value)).astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise TimestampError(f"timestamp {value!r} is outside the representable range") from exc


def _offset(tz: str, original: str) -> timezone:
    if tz in ("Z", "z", "UTC"):
        return UTC
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    hours = int(digits[:2])
    minutes = int(digits[2:4]) if len(digits) >= 4 else 0
    if hours > 23 or minutes > 59:
        raise TimestampError(f"invalid UTC offset {tz!r} in {original!r}")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def format_utc(value: datetime) -> str:
    """Render an aware datetime as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (fixed width, sortable)."""
    return parse_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_epoch_us(value: datetime) -> int:
    """Exact microseconds since the Unix epoch (the ledger's storage form; no string compares)."""
    delta = parse_utc(value) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_us(value: int) -> datetime:
    """Inverse of :func:`to_epoch_us`."""
    return _EPOCH + timedelta(microseconds=int(value))
