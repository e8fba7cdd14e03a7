"""Frozen values shared by every mechanism: closed trades, shadow signals, entry signals.

Pure: no I/O, no clock. Values validate themselves in ``__post_init__`` and name the offending
field and value, so a bad row is caught where it enters, never deep inside a decision.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["EntrySignal", "ShadowSignal", "Side", "Trade", "TradeState", "pip_size"]


class Side(StrEnum):
    """Direction of a position."""

    LONG = "long"
    SHORT = "short"

    @property
    def sign(self) -> int:
        return 1 if self is Side.LONG else -1

    @property
    def opposite(self) -> Side:
        return Side.SHORT if self is Side.LONG else Side.LONG


class TradeState(StrEnum):
    """CLOSED: the whole trade closed in this fill. PARTIAL: this fill reduced it."""

    CLOSED = "CLOSED"
    PARTIAL = "PARTIAL"


def pip_size(instrument: str) -> float:
    """One pip in price units: 0.01 for JPY-quoted pairs, 0.0001 otherwise (OANDA convention)."""
    quote = instrument.replace("/", "_").upper().split("_")[-1]
    return 0.01 if quote == "JPY" else 0.0001


def _require_aware(name: str, value: datetime) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a UTC-aware datetime, got {value!r}")


def _require_finite(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Trade:
    """One closed (or partially closed) trade, as the learning loops see it.

    ``(broker_trade_id, close_tx_id)`` identifies the row: a partial close and the final close
    of one broker trade are two rows. ``units`` is the absolute size closed by this row.
    ``pl_pips`` is signed by outcome; ``pl_account`` is in the account currency.
    """

    broker_trade_id: str
    close_tx_id: str
    instrument: str
    pocket: str
    strategy: str
    side: Side
    units: int
    entry_price: float
    close_price: float
    entry_at: datetime
    close_at: datetime
    pl_pips: float
    pl_account: float
    broker_close_reason: str = ""
    exit_reason: str = ""
    regime_macro: str = ""
    regime_micro: str = ""
    config_version: str = ""
    client_order_id: str = ""
    state: TradeState = TradeState.CLOSED
    source: str = ""

    def __post_init__(self) -> None:
        if not self.broker_trade_id:
            raise ValueError("broker_trade_id must be non-empty")
        if not self.instrument:
            raise ValueError("instrument must be non-empty")
        if not isinstance(self.units, int) or isinstance(self.units, bool) or self.units <= 0:
            raise ValueError(f"units must be a positive int (absolute size), got {self.units!r}")
        for name in ("entry_price", "close_price", "pl_pips", "pl_account"):
            _require_finite(name, getattr(self, name))
        if self.entry_price <= 0 or self.close_price <= 0:
            raise ValueError(
                f"prices must be > 0, got entry {self.entry_price!r} close {self.close_price!r}"
            )
        _require_aware("entry_at", self.entry_at)
        _require_aware("close_at", self.close_at)
        if self.close_at < self.entry_at:
            raise ValueError(
                f"close_at {self.close_at.isoformat()} is before entry_at "
                f"{self.entry_at.isoformat()}"
            )
        object.__setattr__(self, "side", Side(self.side))
        object.__setattr__(self, "state", TradeState(self.state))

    @property
    def is_win(self) -> bool:
        return self.pl_pips > 0

    @property
    def hold_s(self) -> float:
        return (self.close_at - self.entry_at).total_seconds()

    @classmethod
    def trusted(cls, values: tuple[Any, ...]) -> Trade:
        """A Trade from its field values in declaration order, *without* ``__post_init__``.

        Only for values already known to satisfy every check there, with ``side`` and ``state``
        already the enums: rows read back from our own ledger (``ledger._rows`` checks the few
        invariants a foreign writer could break, cheaply, before calling this). Validating and
        re-converting each of 50k rows costs a tune cycle more than the rest of it (issue 16).
        """
        return _trusted_trade(values)


def _unrolled_setter(cls: type[Any]) -> Any:
    """``values -> instance`` of the slotted ``cls``, one slot setter call per field, unrolled
    (as ``dataclasses`` builds ``__init__``): the setters bypass the frozen ``__setattr__``,
    and unrolling them is a third faster than a loop over 21 fields."""
    names = [f.name for f in fields(cls)]
    env = {"new": object.__new__, "cls": cls} | {f"set_{n}": getattr(cls, n).__set__ for n in names}
    body = "".join(f"    set_{n}(obj, values[{i}])\n" for i, n in enumerate(names))
    source = f"def build(values):\n    obj = new(cls)\n{body}    return obj\n"
    exec(source, env)  # noqa: S102 - the source is built from the field names above only
    return env["build"]


_trusted_trade: Callable[[tuple[Any, ...]], Trade] = _unrolled_setter(Trade)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShadowSignal:
    """An entry the bot would have taken but did not (strategy blocked or in shadow mode).

    ``outcome_pips`` is filled later, by the bot's own shadow bookkeeping or by evaluating the
    signal against candles; until then it is ``None``. It is what lets a blocked pocket prove it
    has recovered (the original's block never lifted: original-system.md 5.2).
    """

    signal_id: str
    at: datetime
    instrument: str
    pocket: str
    strategy: str
    side: Side
    price: float
    sl_pips: float | None = None
    tp_pips: float | None = None
    config_version: str = ""
    reason: str = ""
    outcome_pips: float | None = None
    outcome_at: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.signal_id:
            raise ValueError("signal_id must be non-empty")
        _require_aware("at", self.at)
        _require_finite("price", self.price)
        if self.outcome_at is not None:
            _require_aware("outcome_at", self.outcome_at)
        if self.outcome_pips is not None:
            _require_finite("outcome_pips", self.outcome_pips)
        object.__setattr__(self, "side", Side(self.side))


@dataclass(frozen=True, slots=True, kw_only=True)
class EntrySignal:
    """One candidate entry a strategy evaluated, taken or not: a row of the signal log.

    ``at`` is the decision time, the close time of the bar the signal was decided on, and
    ``price`` the mid then. ``scores`` are the named numbers the entry-threshold knobs compare
    (the registry's ``score``): a counterfactual replays the signals a candidate threshold would
    admit, so every score must be finite. ``not_taken`` says why a signal was not taken
    (``threshold``, ``gate:<code>``, ``policy_block``, ``reentry_block``, ``position_open``,
    ``shadow`` or the bot's own text) and is ``''`` exactly when ``taken``; ``broker_trade_id``
    names the trade a taken signal opened ('' while unknown). ``sl_pips``/``tp_pips``/
    ``timeout_s`` are what the entry would use (``None``: none). ``scores`` and ``extra`` are
    copied on construction, so the caller's dicts never alias a stored value.
    """

    signal_id: str
    at: datetime
    instrument: str
    pocket: str
    strategy: str
    side: Side
    price: float
    sl_pips: float | None = None
    tp_pips: float | None = None
    timeout_s: float | None = None
    scores: Mapping[str, float] = field(default_factory=dict)
    unit_id: str = ""
    taken: bool
    not_taken: str = ""
    broker_trade_id: str = ""
    config_version: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.signal_id, str) or not self.signal_id:
            raise ValueError(f"signal_id must be a non-empty string, got {self.signal_id!r}")
        try:
            self._check()
        except ValueError as exc:  # every message names the signal, then the field
            raise ValueError(f"signal {self.signal_id}: {exc}") from None
        object.__setattr__(self, "side", Side(self.side))
        object.__setattr__(self, "scores", _scores(self.scores))
        object.__setattr__(self, "extra", dict(self.extra))

    def _check(self) -> None:
        if self.side not in {s.value for s in Side}:
            raise ValueError(f"side must be 'long' or 'short', got {self.side!r}")
        _require_aware("at", self.at)
        _require_finite("price", self.price)
        for name in ("sl_pips", "tp_pips", "timeout_s"):
            value = getattr(self, name)
            if value is not None:
                _require_finite(name, value)
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0 seconds or None, got {self.timeout_s!r}")
        if not isinstance(self.taken, bool):
            raise ValueError(f"taken must be a bool, got {self.taken!r}")
        if self.taken and self.not_taken:
            raise ValueError(f"not_taken must be '' for a taken signal, got {self.not_taken!r}")
        if not self.taken and not self.not_taken:
            raise ValueError("not_taken must say why the signal was not taken, got ''")
        _scores(self.scores)
        if not isinstance(self.extra, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.extra.items()
        ):
            raise ValueError(f"extra must map text to text, got {self.extra!r}")


def _scores(raw: object) -> dict[str, float]:
    """``raw`` as a fresh ``{name: float}``; raises naming the first bad name or value."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"scores must be a mapping of name -> number, got {raw!r}")
    out: dict[str, float] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"scores: a score name must be a non-empty string, got {name!r}")
        if isinstance(value, bool):  # True is an int, not a score
            raise ValueError(f"scores[{name!r}] must be a finite number, got {value!r}")
        _require_finite(f"scores[{name!r}]", value)
        out[name] = float(value)
    return out
