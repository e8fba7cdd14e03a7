"""``Candles`` <-> ``candles`` rows: granularity names, checks before storing, decoding.

The store keeps one row per bar keyed ``(instrument, granularity, time_us)``, ``time_us`` the
bar's open in UTC epoch microseconds. The granularity is OANDA's name (``M1``, ``M5``, ``H1``...),
and it fixes the bar length: a ``Candles`` of another ``timeframe_s`` is refused rather than
stored under a wrong name (an M5 series read back as M1 would silently shift every exit).

A stored row that no longer decodes (prices out of order, a negative spread: written by hand or
by another tool) is ``LedgerError`` naming the table and the row's key, like ``_rows.py``.

Pure: no connection, no clock. Imported lazily by ``SqlLedger`` (numpy is the ``learn`` extra;
a bot's bare worker install opens the ledger without it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from autolearn.backtest._parsers import OANDA_GRANULARITY_S
from autolearn.backtest.candles import Candles
from autolearn.errors import InputError, LedgerError
from autolearn.ledger._rows import check_text

__all__ = ["candle_rows", "candles_from_rows", "granularity_seconds"]


def granularity_seconds(granularity: str) -> int:
    """The bar length of an OANDA granularity name; unknown names raise ``InputError``."""
    seconds = OANDA_GRANULARITY_S.get(granularity)
    if seconds is None:
        raise InputError(
            f"unknown candle granularity {granularity!r}; known: {sorted(OANDA_GRANULARITY_S)} "
            "(OANDA's names; monthly 'M' has no fixed length and is not stored)"
        )
    return seconds


def candle_rows(candles: Candles, granularity: str) -> Iterator[dict[str, Any]]:
    """The ``candles`` rows of ``candles`` (without ``ingested_at_us``), in time order.

    Raises:
        InputError: unknown granularity, or one that does not match ``candles.timeframe_s``.
        LedgerError: text both backends cannot store identically.
    """
    seconds = granularity_seconds(granularity)
    if candles.timeframe_s != seconds:
        raise InputError(
            f"candles of {candles.instrument} ({candles.source or 'unknown source'}) are "
            f"{candles.timeframe_s}s bars, granularity {granularity} means {seconds}s; pass the "
            "granularity of the data"
        )
    check_text(
        {"instrument": candles.instrument, "granularity": granularity, "source": candles.source}
    )
    spread = candles.spread_pips
    columns = (candles.open, candles.high, candles.low, candles.close, candles.volume)
    for i, t in enumerate(candles.time_us.tolist()):
        o, h, low, c, v = (float(col[i]) for col in columns)
        yield {
            "instrument": candles.instrument,
            "granularity": granularity,
            "time_us": int(t),
            "open": o,
            "high": h,
            "low": low,
            "close": c,
            "spread_pips": None if spread is None else float(spread[i]),
            "volume": v,
            "source": candles.source,
        }


def candles_from_rows(
    rows: Sequence[Any], *, instrument: str, granularity: str, source: str = ""
) -> Candles:
    """One ``Candles`` from stored rows in time order (row mappings, or tuples in column order).

    ``spread_pips`` is an array only when every bar has one (a range mixing mid-only files and
    bid/ask feeds reads as mid only). ``source`` names the store when the rows hold several.
    """
    seconds = granularity_seconds(granularity)
    n = len(rows)
    times = np.empty(n, dtype=np.int64)
    prices = np.empty((n, 5), dtype=np.float64)
    spread = np.empty(n, dtype=np.float64)
    sources: set[str] = set()
    for i, r in enumerate(rows):
        times[i] = int(r["time_us"])
        prices[i] = (r["open"], r["high"], r["low"], r["close"], r["volume"])
        value = r["spread_pips"]
        spread[i] = math.nan if value is None else float(value)
        sources.add(str(r["source"]))
    has_spread = n > 0 and not bool(np.any(np.isnan(spread)))
    try:
        return Candles(
            instrument=instrument,
            timeframe_s=seconds,
            time_us=times,
            open=prices[:, 0],
            high=prices[:, 1],
            low=prices[:, 2],
            close=prices[:, 3],
            volume=prices[:, 4],
            source=sources.pop() if len(sources) == 1 else source,
            spread_pips=spread if has_spread else None,
        )
    except ValueError as exc:
        raise LedgerError(
            f"candles rows of ({instrument!r}, {granularity!r}) cannot be decoded: {exc}; "
            f"{_first_bad(times, prices, spread)}fix or delete those rows (they were not "
            "written by this version's checks)"
        ) from exc


def _first_bad(
    times: np.ndarray[Any, Any], prices: np.ndarray[Any, Any], spread: np.ndarray[Any, Any]
) -> str:
    o, h, low, c = prices[:, 0], prices[:, 1], prices[:, 2], prices[:, 3]
    bad = (
        (h < np.maximum(o, c))
        | (low > np.minimum(o, c))
        | ~np.isfinite(prices).all(axis=1)
        | (spread < 0)
        | np.isinf(spread)
    )
    found = np.flatnonzero(bad)
    return f"first bad row time_us={int(times[found[0]])}; " if found.size else ""
