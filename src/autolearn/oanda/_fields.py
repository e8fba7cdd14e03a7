"""Readers for v20 wire values: ids, instruments, decimal strings, units, RFC 3339 times.

Pure: no I/O, no clock. Each reader takes a JSON object, a key and a ``where`` prefix
(``tradesClosed[0]``) and returns a typed value or raises ``Malformed`` whose message is the
field path, what was expected and the (shortened) value: the exact text a rejected transaction
is reported with. v20 sends numbers as decimal strings; they are read as ``Decimal`` so pips
and P/L are exact (``151.662 - 151.652`` is ``0.010``, not ``0.00999999999999``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation

from autolearn.core.timestamps import parse_utc
from autolearn.oanda.tags import ClientTags, parse_client_extensions

__all__ = [
    "Malformed",
    "int_id",
    "norm_id",
    "read_decimal",
    "read_id",
    "read_instrument",
    "read_price",
    "read_tags",
    "read_time",
    "read_units",
    "show",
]

_ID_RE = re.compile(r"^[0-9]{1,19}$")
_INSTRUMENT_RE = re.compile(r"^[A-Z0-9]{2,10}_[A-Z0-9]{2,10}$")
# FX units are whole; 1e12 is far above any OANDA position limit and keeps ints small.
_MAX_UNITS = Decimal(10) ** 12


class Malformed(ValueError):
    """A field cannot be read; the message is the reason reported for the transaction."""


# Field values are quoted only this long: a value could be anything the broker (or whoever
# sits in between) put there, a secret included; 24 characters identify a bad id or time.
SHOW_CHARS = 24


def show(value: object) -> str:
    """``repr`` cut to ``SHOW_CHARS`` characters (with the full length), for messages."""
    text = repr(value)
    if len(text) <= SHOW_CHARS:
        return text
    return f"{text[: SHOW_CHARS - 3]}... ({len(text)} chars)"


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def norm_id(value: object) -> str | None:
    """A TransactionID/TradeID as a canonical decimal string, or None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**19:
        return str(value)
    if isinstance(value, str) and _ID_RE.match(value) and int(value) > 0:
        return str(int(value))
    return None


def int_id(value: str) -> int:
    """A canonical id string as an int (0 for anything else: sorts first, never matches)."""
    return int(value) if _ID_RE.match(value) else 0


def read_id(obj: Mapping[str, object], key: str, where: str) -> str:
    value = norm_id(obj.get(key))
    if value is None:
        raise Malformed(f"{_path(where, key)}: not a positive integer id: {show(obj.get(key))}")
    return value


def read_instrument(obj: Mapping[str, object], where: str) -> str:
    value = obj.get("instrument")
    if not isinstance(value, str) or not _INSTRUMENT_RE.match(value):
        raise Malformed(f"{_path(where, 'instrument')}: not an instrument: {show(value)}")
    return value


def read_time(obj: Mapping[str, object], key: str, where: str) -> datetime:
    value = obj.get(key)
    if not isinstance(value, str):
        raise Malformed(f"{_path(where, key)}: expected an RFC 3339 string, got {show(value)}")
    try:
        return parse_utc(value)
    except (ValueError, OverflowError) as exc:
        raise Malformed(f"{_path(where, key)}: {exc}") from exc


def read_decimal(
    obj: Mapping[str, object], key: str, where: str, *, required: bool = True
) -> Decimal:
    value = obj.get(key)
    if value is None and not required:
        return Decimal(0)
    # v20 sends decimals as strings; ints are tolerated, floats are not (already rounded).
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Malformed(f"{_path(where, key)}: expected a decimal string, got {show(value)}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise Malformed(f"{_path(where, key)}: not a decimal: {show(value)}") from exc
    if not number.is_finite():
        raise Malformed(f"{_path(where, key)}: not finite: {show(value)}")
    return number


def read_price(obj: Mapping[str, object], key: str, where: str) -> Decimal:
    value = read_decimal(obj, key, where)
    if value <= 0:
        raise Malformed(f"{_path(where, key)}: price must be > 0, got {value}")
    return value


def read_units(obj: Mapping[str, object], key: str, where: str) -> int:
    value = read_decimal(obj, key, where)
    if value == 0 or abs(value) >= _MAX_UNITS or value != value.to_integral_value():
        raise Malformed(f"{_path(where, key)}: units must be a non-zero whole number: {value}")
    return int(value)


def read_tags(extensions: object, fallback_id: object) -> ClientTags:
    ext = extensions if isinstance(extensions, Mapping) else None
    return parse_client_extensions(
        ext, fallback_id=fallback_id if isinstance(fallback_id, str) else ""
    )
