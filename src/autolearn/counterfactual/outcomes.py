"""Signal outcomes: every logged signal placed on the candles and simulated as its own position.

Placement. A signal's ``at`` is its decision time, the close of the bar it was decided on. It
enters at the open of the first bar that opens at or after ``at``, and its decision bar is the
bar before that one. When ``at`` is a bar close (the normal case) this is exactly "the bar whose
close equals ``at``, entered at the next open". A decision inside a bar (a bot on ticks) enters
at the next bar's open, never at a price from before the decision. A signal is not placed, with a
reason code, when:

* ``signal_outside_candles``: no bar closed at or before it, or no bar to enter on after it;
* ``signal_in_gap``: the last bar before it closed more than one bar length before it (the
  candles have a hole where the bot saw a market);
* ``signal_other_instrument``: the signal is for another instrument than the candles;
* ``signal_price_far``: its price is further from the decision bar's close than
  ``max(price_tolerance_pips, 5 x the bar's range)``: a bad row, not a market;
* ``candle_clock``: most placed signals (over half, at least 5) are that far: the candles (or the
  signals) are on another clock, so NO signal is placed.

Defaults for what a signal leaves open: no SL (``sl_pips`` None or <= 0) or no TP means no such
level (``sl_pips_default`` / ``tp_pips_default`` override); no ``timeout_s`` means
``timeout_bars_default`` bars (0 = none); a ``timeout_s`` becomes ``ceil(timeout_s / bar length)``
bars, at least 1 (the first bar close at or after the timeout).

Costs: the candles' per-bar ``spread_pips`` when the source has it, else the constant
``spread_pips``, as the backtest engine does. Fill and tie rules: ``_kernel``.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from autolearn.backtest.candles import Candles
from autolearn.core.model import EntrySignal, Side
from autolearn.counterfactual import _kernel

__all__ = [
    "CANDLE_CLOCK",
    "SIGNAL_IN_GAP",
    "SIGNAL_OTHER_INSTRUMENT",
    "SIGNAL_OUTSIDE_CANDLES",
    "SIGNAL_PRICE_FAR",
    "SignalOutcomes",
    "bar_half_spread",
    "signal_outcomes",
    "simulate_signals",
]

SIGNAL_OUTSIDE_CANDLES = "signal_outside_candles"
SIGNAL_IN_GAP = "signal_in_gap"
SIGNAL_OTHER_INSTRUMENT = "signal_other_instrument"
SIGNAL_PRICE_FAR = "signal_price_far"
CANDLE_CLOCK = "candle_clock"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_DAY_US = 86_400_000_000
_CLOCK_MIN_SIGNALS = 5  # fewer placed signals than this cannot tell a clock from bad rows
_RANGE_MULTIPLE = 5.0
_CODES = (SIGNAL_OTHER_INSTRUMENT, SIGNAL_OUTSIDE_CANDLES, SIGNAL_IN_GAP, SIGNAL_PRICE_FAR)


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalOutcomes:
    """Per-signal results, aligned with the input order.

    ``bar`` is the decision bar (-1 when not placed), ``entry_bar`` = ``bar + 1``, ``exit_bar``
    the bar it closed on; ``pips`` the simulated P/L (NaN when not placed); ``exit_reason`` the
    backtest engine's reason index (``ExitReason``; -1 when not placed); ``day`` the UTC epoch day
    of the decision (for per-day statistics). ``problems`` has one ``(code, detail)`` per reason
    code that left signals unplaced, with the count and the first signal ids.
    """

    bar: NDArray[np.int64]
    exit_bar: NDArray[np.int64]
    pips: NDArray[np.float64]
    exit_reason: NDArray[np.int8]
    placed: NDArray[np.bool_]
    day: NDArray[np.int64]
    problems: tuple[tuple[str, str], ...]

    def __len__(self) -> int:
        return len(self.bar)


def bar_half_spread(candles: Candles, spread_pips: float) -> NDArray[np.float64]:
    """Half the spread per bar in price units: the candles' own, else the constant given."""
    if not (math.isfinite(spread_pips) and spread_pips >= 0):
        raise ValueError(f"spread_pips must be finite and >= 0, got {spread_pips!r}")
    if candles.spread_pips is not None:
        return np.asarray(candles.spread_pips, dtype=np.float64) * (candles.pip / 2.0)
    return np.full(len(candles), spread_pips * candles.pip / 2.0)


def signal_outcomes(
    candles: Candles,
    signals: Sequence[EntrySignal],
    *,
    spread_pips: float,
    timeout_bars_default: int = 30,
    sl_pips_default: float = 0.0,
    tp_pips_default: float = 0.0,
    price_tolerance_pips: float = 20.0,
) -> SignalOutcomes:
    """Place each signal on the candles and simulate it (see the module docstring for rules)."""
    tf_s = candles.timeframe_s
    m = len(signals)
    at_us = np.fromiter(((s.at - _EPOCH) // _US for s in signals), np.int64, m)
    side = np.fromiter((1 if s.side is Side.LONG else -1 for s in signals), np.int8, m)
    price = np.fromiter((s.price for s in signals), np.float64, m)
    sl = np.fromiter((_level(s.sl_pips, sl_pips_default) for s in signals), np.float64, m)
    tp = np.fromiter((_level(s.tp_pips, tp_pips_default) for s in signals), np.float64, m)
    timeout = np.fromiter(
        (
            timeout_bars_default if s.timeout_s is None else max(1, math.ceil(s.timeout_s / tf_s))
            for s in signals
        ),
        np.int64,
        m,
    )
    instrument = _norm(candles.instrument)
    same = np.fromiter((_norm(s.instrument) == instrument for s in signals), np.bool_, m)
    return simulate_signals(
        candles,
        at_us=at_us,
        side=side,
        price=price,
        sl_pips=sl,
        tp_pips=tp,
        timeout_bars=timeout,
        spread_pips=spread_pips,
        same_instrument=same,
        ids=[s.signal_id for s in signals],
        price_tolerance_pips=price_tolerance_pips,
    )


def simulate_signals(
    candles: Candles,
    *,
    at_us: NDArray[np.int64],
    side: NDArray[np.int8],
    price: NDArray[np.float64],
    sl_pips: NDArray[np.float64],
    tp_pips: NDArray[np.float64],
    timeout_bars: NDArray[np.int64],
    spread_pips: float,
    same_instrument: NDArray[np.bool_] | None = None,
    ids: Sequence[str] | None = None,
    price_tolerance_pips: float = 20.0,
) -> SignalOutcomes:
    """:func:`signal_outcomes` on columns (decision times in UTC epoch microseconds, side +/-1)."""
    m = len(at_us)
    ids = ids if ids is not None else [str(k) for k in range(m)]
    code = np.full(m, -1, np.int8)  # index into _CODES, -1 = placed
    if same_instrument is not None:
        code[~np.asarray(same_instrument, dtype=bool)] = 0
    bar = _place(candles, np.asarray(at_us, dtype=np.int64), code)
    placed = code < 0
    far = placed & _price_far(candles, bar, np.asarray(price, np.float64), price_tolerance_pips)
    n_placed, n_far = int(np.count_nonzero(placed)), int(np.count_nonzero(far))
    if n_placed >= _CLOCK_MIN_SIGNALS and 2 * n_far > n_placed:
        clock = (
            f"{n_far} of {n_placed} placed signals are priced more than "
            f"{price_tolerance_pips:g} pips (or 5 bar ranges) from the candle they fall on: "
            "candles and signals are on different clocks; no signal placed"
        )
        problems = [*_problems(code, ids), (CANDLE_CLOCK, clock)]
        code[placed] = len(_CODES)  # not placed, reported once as candle_clock
    else:
        code[far] = _CODES.index(SIGNAL_PRICE_FAR)
        problems = _problems(code, ids)
    placed = code < 0
    bar = np.where(placed, bar, -1)
    pip = candles.pip
    entry = np.where(placed, bar + 1, -1)
    out_bar, _, _, pips, reason = _kernel.simulate_entries(
        candles.open,
        candles.high,
        candles.low,
        candles.close,
        entry.astype(np.int64),
        np.where(placed, side, 0).astype(np.int8),
        np.asarray(sl_pips, np.float64) * pip,
        np.asarray(tp_pips, np.float64) * pip,
        np.asarray(timeout_bars, np.int64),
        bar_half_spread(candles, spread_pips),
        pip,
    )
    return SignalOutcomes(
        bar=bar.astype(np.int64),
        exit_bar=out_bar,
        pips=pips,
        exit_reason=reason,
        placed=placed,
        day=np.floor_divide(at_us, _DAY_US).astype(np.int64),
        problems=tuple(problems),
    )


def _place(candles: Candles, at_us: NDArray[np.int64], code: NDArray[np.int8]) -> NDArray[np.int64]:
    """Decision bar per signal (entry = the first bar opening at or after ``at``); sets codes."""
    n = len(candles)
    tf_us = np.int64(candles.timeframe_s) * 1_000_000
    entry = np.searchsorted(candles.time_us, at_us, side="left").astype(np.int64)
    outside = (entry == 0) | (entry >= n)
    bar = np.clip(entry - 1, 0, max(n - 1, 0))
    if n:
        late = at_us - (candles.time_us[bar] + tf_us)  # how long after the decision bar closed
        gap = ~outside & (late >= tf_us)
    else:
        gap = np.zeros(len(at_us), dtype=bool)
    free = code < 0
    code[free & outside] = 1
    code[free & gap] = 2
    return bar


def _price_far(
    candles: Candles, bar: NDArray[np.int64], price: NDArray[np.float64], tol_pips: float
) -> NDArray[np.bool_]:
    if not len(candles):
        return np.zeros(len(bar), dtype=bool)
    b = np.clip(bar, 0, len(candles) - 1)
    tol = np.maximum(tol_pips * candles.pip, _RANGE_MULTIPLE * (candles.high[b] - candles.low[b]))
    return np.asarray(np.abs(price - candles.close[b]) > tol, dtype=bool)


def _problems(code: NDArray[np.int8], ids: Sequence[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for k, name in enumerate(_CODES):
        where = np.flatnonzero(code == k)
        if where.size:
            first = ", ".join(ids[int(i)] for i in where[:3])
            out.append((name, f"{where.size} signals not placed ({name}), e.g. {first}"))
    return out


def _level(value: float | None, default: float) -> float:
    return default if value is None or value <= 0 else float(value)


def _norm(instrument: str) -> str:
    return instrument.replace("/", "_").upper()
