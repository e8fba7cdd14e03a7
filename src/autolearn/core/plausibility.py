"""Plausible ranges for what a writer may put into the ledger: no future, no absurd magnitudes.

A value can be finite and still poison every reader: a ``close_time`` in year 9999 moves the
gates' watermark past every later trade, and ``pl_pips = 1e300`` overflows the variance of
every window that contains it. Every writer (the importers, the OANDA ingest, ``TradeWriter``)
checks each row against :class:`TradeLimits` before it is stored and rejects the row with the
field, the value and the limit. The defaults are far beyond any real FX trade; an operator can
set them in ``config/ledger.yaml`` (``autolearn.ledger.limits``).

Pure: no I/O, no clock (``now`` is a parameter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from autolearn.core.model import EntrySignal, ShadowSignal, Trade

__all__ = [
    "Implausible",
    "TradeLimits",
    "implausible_entry_signal",
    "implausible_signal",
    "implausible_trade",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeLimits:
    """The plausible range of each stored field (absolute values; 0 < limit)."""

    future_tolerance: timedelta = timedelta(minutes=5)  # clock skew between bot and us
    max_abs_pl_pips: float = 100_000.0
    max_abs_pl_account: float = 1e12
    max_units: int = 10**12
    max_price: float = 1e7  # prices are per unit of base currency
    max_abs_signal_pips: float = 100_000.0  # sl/tp/outcome of a shadow or entry signal
    max_abs_signal_score: float = 1e9  # every score of an entry signal
    max_signal_timeout_s: float = 30 * 86400.0  # an entry signal's timeout (30 days)

    def __post_init__(self) -> None:
        if self.future_tolerance < timedelta(0):
            raise ValueError(f"future_tolerance must be >= 0, got {self.future_tolerance}")
        for name in (
            "max_abs_pl_pips",
            "max_abs_pl_account",
            "max_units",
            "max_price",
            "max_abs_signal_pips",
            "max_abs_signal_score",
            "max_signal_timeout_s",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class Implausible:
    """One field outside its plausible range."""

    field: str
    value: str
    reason: str

    def describe(self) -> str:
        return f"{self.field} {self.value}: {self.reason}"


def _future(name: str, at: datetime, now: datetime, limits: TradeLimits) -> Implausible | None:
    if at - now > limits.future_tolerance:  # not now + tolerance: that can overflow
        return Implausible(
            name,
            at.isoformat(),
            f"in the future (now {now.isoformat()}, tolerance {limits.future_tolerance}); "
            "a future time would hide every later trade from the gates",
        )
    return None


def _magnitude(name: str, value: float, limit: float, what: str = "trade") -> Implausible | None:
    if not math.isfinite(value) or abs(value) > limit:
        return Implausible(name, repr(value), f"|{name}| > {limit:g} is not a plausible {what}")
    return None


def implausible_trade(trade: Trade, now: datetime, limits: TradeLimits) -> list[Implausible]:
    """Every field of ``trade`` outside ``limits`` at ``now`` (empty: plausible)."""
    found = [
        _future("close_at", trade.close_at, now, limits),
        _future("entry_at", trade.entry_at, now, limits),
        _magnitude("pl_pips", trade.pl_pips, limits.max_abs_pl_pips),
        _magnitude("pl_account", trade.pl_account, limits.max_abs_pl_account),
        _magnitude("units", trade.units, limits.max_units),
        _magnitude("entry_price", trade.entry_price, limits.max_price),
        _magnitude("close_price", trade.close_price, limits.max_price),
    ]
    return [f for f in found if f is not None]


def implausible_signal(
    signal: ShadowSignal, now: datetime, limits: TradeLimits
) -> list[Implausible]:
    """Every field of ``signal`` outside ``limits`` at ``now`` (empty: plausible)."""
    found = [
        _future("at", signal.at, now, limits),
        _magnitude("price", signal.price, limits.max_price),
    ]
    if signal.outcome_at is not None:
        found.append(_future("outcome_at", signal.outcome_at, now, limits))
    for name in ("sl_pips", "tp_pips", "outcome_pips"):
        value = getattr(signal, name)
        if value is not None:
            found.append(_magnitude(name, value, limits.max_abs_signal_pips))
    return [f for f in found if f is not None]


def implausible_entry_signal(
    signal: EntrySignal, now: datetime, limits: TradeLimits
) -> list[Implausible]:
    """Every field of ``signal`` outside ``limits`` at ``now`` (empty: plausible).

    Scores are bounded too: one absurd score (``1e300``) would overflow every statistic a
    counterfactual computes over the signals it admits.
    """
    found = [
        _future("at", signal.at, now, limits),
        _magnitude("price", signal.price, limits.max_price, "signal"),
    ]
    for name in ("sl_pips", "tp_pips"):
        value = getattr(signal, name)
        if value is not None:
            found.append(_magnitude(name, value, limits.max_abs_signal_pips, "signal"))
    if signal.timeout_s is not None:
        found.append(
            _magnitude("timeout_s", signal.timeout_s, limits.max_signal_timeout_s, "signal")
        )
    for score, value in sorted(signal.scores.items()):
        found.append(_magnitude(f"scores[{score!r}]", value, limits.max_abs_signal_score, "signal"))
    return [f for f in found if f is not None]
