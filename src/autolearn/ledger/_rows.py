"""Trade / ShadowSignal / EntrySignal <-> ledger rows: conversion, checks, batching into chunks.

A value is refused (``LedgerError``) when both backends cannot store it identically: text with
a NUL character (PostgreSQL rejects it) or a lone surrogate (not valid UTF-8), and ``units``
beyond a 64-bit integer. Times become epoch microseconds; ``extra`` and ``scores`` become
canonical JSON (sorted keys, floats in their shortest exact form) so an unchanged signal compares
equal to its stored row and every value round-trips exactly.

A stored row that no longer decodes (another writer or an older version left it inconsistent,
e.g. ``close_at`` before ``entry_at``) is reported as ``LedgerError`` naming the table and the
row's key, never as the model's bare ``ValueError``: readers treat the ledger as unreadable.

Pure: no connection, no clock (``ingested_at_us`` is added by the caller), no schema objects.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from autolearn.core.model import EntrySignal, ShadowSignal, Side, Trade, TradeState
from autolearn.core.timestamps import from_epoch_us, to_epoch_us
from autolearn.errors import LedgerError

if TYPE_CHECKING:  # only the row type: the SQLite fast reader decodes without SQLAlchemy
    import sqlalchemy as sa

__all__ = [
    "TRADE_COLUMNS",
    "canonical_json",
    "check_text",
    "chunks",
    "shadow_from_row",
    "shadow_row",
    "shadow_signal_row",
    "signal_from_row",
    "signal_row",
    "trade_from_row",
    "trade_from_values",
    "trade_row",
]

_INT64_MAX = 2**63 - 1

_T = TypeVar("_T")


def chunks(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    """``items`` in lists of ``size`` (the last one shorter), consumed lazily."""
    chunk: list[_T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def check_text(fields: Mapping[str, object]) -> None:
    """Refuse text both backends cannot store identically (NUL: PostgreSQL; lone surrogates)."""
    for name, value in fields.items():
        if not isinstance(value, str) or (value.isascii() and "\x00" not in value):
            continue  # the common case, kept cheap: this runs for every field of every row
        if "\x00" in value:
            raise LedgerError(f"{name} {value!r} contains a NUL character; refusing to store it")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise LedgerError(f"{name} {value!r} is not valid Unicode text: {exc}") from exc


def trade_row(t: Trade) -> dict[str, Any]:
    """The ``trades`` row of ``t`` (without ``ingested_at_us``); raises ``LedgerError``."""
    if t.units > _INT64_MAX:
        raise LedgerError(f"trade {t.broker_trade_id}: units {t.units} exceed a 64-bit integer")
    row: dict[str, Any] = {
        "broker_trade_id": t.broker_trade_id,
        "close_tx_id": t.close_tx_id,
        "instrument": t.instrument,
        "pocket": t.pocket,
        "strategy": t.strategy,
        "side": t.side.value,
        "units": t.units,
        "entry_price": float(t.entry_price),
        "close_price": float(t.close_price),
        "entry_at_us": to_epoch_us(t.entry_at),
        "close_at_us": to_epoch_us(t.close_at),
        "pl_pips": float(t.pl_pips),
        "pl_account": float(t.pl_account),
        "broker_close_reason": t.broker_close_reason,
        "exit_reason": t.exit_reason,
        "regime_macro": t.regime_macro,
        "regime_micro": t.regime_micro,
        "config_version": t.config_version,
        "client_order_id": t.client_order_id,
        "state": t.state.value,
        "source": t.source,
    }
    check_text(row)
    return row


# What a corrupt stored value raises while being decoded: the model's validation (ValueError,
# TimestampError), a NULL or wrong type (TypeError), an epoch beyond datetime (OverflowError).
_DECODE_ERRORS = (ValueError, TypeError, OverflowError)


def _undecodable(table: str, key: str, exc: Exception) -> LedgerError:
    return LedgerError(
        f"{table} row {key} cannot be decoded: {exc}; "
        "fix or delete that row (it was not written by this version's checks)"
    )


def trade_from_row(r: sa.RowMapping) -> Trade:
    """The ``Trade`` stored in ``trades`` row ``r``; an undecodable row raises ``LedgerError``."""
    return trade_from_values(tuple(r[name] for name in TRADE_COLUMNS))


# The ``trades`` columns of a Trade's fields, in the field order (``Trade.trusted`` takes them).
TRADE_COLUMNS = (
    "broker_trade_id",
    "close_tx_id",
    "instrument",
    "pocket",
    "strategy",
    "side",
    "units",
    "entry_price",
    "close_price",
    "entry_at_us",
    "close_at_us",
    "pl_pips",
    "pl_account",
    "broker_close_reason",
    "exit_reason",
    "regime_macro",
    "regime_micro",
    "config_version",
    "client_order_id",
    "state",
    "source",
)
_SIDES = {s.value: s for s in Side}
_STATES = {s.value: s for s in TradeState}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INF = math.inf


def trade_from_values(v: tuple[Any, ...]) -> Trade:
    """The ``Trade`` of one ``trades`` row given as values in ``TRADE_COLUMNS`` order.

    A row this code wrote passed every check of ``Trade`` on the way in; re-running them (and
    re-converting each value) on the way out cost a tune cycle ~60 % of its time. So a row is
    built with ``Trade.trusted`` once a few comparisons confirm what a foreign writer could
    break (types, positive prices and units, finite P/L, close not before entry, known enums);
    any other row takes the validating path, which decodes it or raises ``LedgerError``
    exactly as before.
    """
    (bid, tx, instrument, _, _, side, units, ep, cp, e_us, c_us, pips, acct, *_rest) = v
    if (
        bid
        and instrument
        and type(units) is int
        and units > 0
        and type(ep) is float
        and type(cp) is float
        and type(pips) is float
        and type(acct) is float
        and 0 < ep < _INF
        and 0 < cp < _INF
        and -_INF < pips < _INF
        and -_INF < acct < _INF
        and type(e_us) is int
        and type(c_us) is int
        and e_us <= c_us
        and side in _SIDES
        and v[19] in _STATES
    ):
        try:
            entry_at = _EPOCH + timedelta(0, 0, e_us)
            close_at = _EPOCH + timedelta(0, 0, c_us)
        except OverflowError:
            pass  # beyond datetime: the validating path says so
        else:
            return Trade.trusted(
                (
                    *v[:5],
                    _SIDES[side],
                    *v[6:9],
                    entry_at,
                    close_at,
                    *v[11:19],
                    _STATES[v[19]],
                    v[20],
                )
            )
    try:
        return _trade_from_row(dict(zip(TRADE_COLUMNS, v, strict=True)))
    except _DECODE_ERRORS as exc:
        raise _undecodable("trades", f"(broker_trade_id={bid!r}, close_tx_id={tx!r})", exc) from exc


def _trade_from_row(r: Mapping[str, Any]) -> Trade:
    return Trade(
        broker_trade_id=r["broker_trade_id"],
        close_tx_id=r["close_tx_id"],
        instrument=r["instrument"],
        pocket=r["pocket"],
        strategy=r["strategy"],
        side=Side(r["side"]),
        units=int(r["units"]),
        entry_price=float(r["entry_price"]),
        close_price=float(r["close_price"]),
        entry_at=from_epoch_us(r["entry_at_us"]),
        close_at=from_epoch_us(r["close_at_us"]),
        pl_pips=float(r["pl_pips"]),
        pl_account=float(r["pl_account"]),
        broker_close_reason=r["broker_close_reason"],
        exit_reason=r["exit_reason"],
        regime_macro=r["regime_macro"],
        regime_micro=r["regime_micro"],
        config_version=r["config_version"],
        client_order_id=r["client_order_id"],
        state=TradeState(r["state"]),
        source=r["source"],
    )


def _optional_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def shadow_row(s: ShadowSignal) -> dict[str, Any]:
    """The ``shadow_signals`` row of ``s`` (without ``ingested_at_us``); raises ``LedgerError``."""
    row: dict[str, Any] = {
        "signal_id": s.signal_id,
        "at_us": to_epoch_us(s.at),
        "instrument": s.instrument,
        "pocket": s.pocket,
        "strategy": s.strategy,
        "side": s.side.value,
        "price": float(s.price),
        "sl_pips": _optional_float(s.sl_pips),
        "tp_pips": _optional_float(s.tp_pips),
        "config_version": s.config_version,
        "reason": s.reason,
        "outcome_pips": _optional_float(s.outcome_pips),
        "outcome_at_us": None if s.outcome_at is None else to_epoch_us(s.outcome_at),
        "extra": canonical_json(s.extra),
    }
    check_text(row)
    return row


def shadow_from_row(r: sa.RowMapping) -> ShadowSignal:
    """The ``ShadowSignal`` stored in ``shadow_signals`` row ``r``; an undecodable row raises
    ``LedgerError``."""
    try:
        return _shadow_from_row(r)
    except _DECODE_ERRORS as exc:
        raise _undecodable("shadow_signals", f"(signal_id={r['signal_id']!r})", exc) from exc


def _shadow_from_row(r: sa.RowMapping) -> ShadowSignal:
    extra = json.loads(r["extra"])
    if not isinstance(extra, dict):
        raise TypeError(f"extra must be a JSON object, got {r['extra']!r}")
    return ShadowSignal(
        signal_id=r["signal_id"],
        at=from_epoch_us(r["at_us"]),
        instrument=r["instrument"],
        pocket=r["pocket"],
        strategy=r["strategy"],
        side=Side(r["side"]),
        price=float(r["price"]),
        sl_pips=_optional_float(r["sl_pips"]),
        tp_pips=_optional_float(r["tp_pips"]),
        config_version=r["config_version"],
        reason=r["reason"],
        outcome_pips=_optional_float(r["outcome_pips"]),
        outcome_at=None if r["outcome_at_us"] is None else from_epoch_us(r["outcome_at_us"]),
        extra={str(k): str(v) for k, v in extra.items()},
    )


def canonical_json(mapping: Mapping[str, object]) -> str:
    """``mapping`` as JSON with sorted keys: equal mappings give equal text (the upsert compares
    text). ``repr``-exact floats; NaN/inf are refused (the model already forbids them)."""
    return json.dumps(dict(mapping), sort_keys=True, ensure_ascii=False, allow_nan=False)


def signal_row(s: EntrySignal) -> dict[str, Any]:
    """The ``signals`` row of ``s`` (without ``ingested_at_us``); raises ``LedgerError``."""
    row: dict[str, Any] = {
        "signal_id": s.signal_id,
        "at_us": to_epoch_us(s.at),
        "instrument": s.instrument,
        "pocket": s.pocket,
        "strategy": s.strategy,
        "side": s.side.value,
        "price": float(s.price),
        "sl_pips": _optional_float(s.sl_pips),
        "tp_pips": _optional_float(s.tp_pips),
        "timeout_s": _optional_float(s.timeout_s),
        "scores": canonical_json(s.scores),
        "unit_id": s.unit_id,
        "taken": bool(s.taken),
        "not_taken": s.not_taken,
        "broker_trade_id": s.broker_trade_id,
        "config_version": s.config_version,
        "extra": canonical_json(s.extra),
    }
    check_text(row)
    return row


# The shadow columns a signal-log row copies as they are (see ``shadow_signal_row``).
_SHADOW_COPIED = (
    "signal_id",
    "at_us",
    "instrument",
    "pocket",
    "strategy",
    "side",
    "price",
    "sl_pips",
    "tp_pips",
    "config_version",
    "extra",
)


def shadow_signal_row(shadow: Mapping[str, Any]) -> dict[str, Any]:
    """The ``signals`` row a stored shadow row maps onto: not taken, its reason (else
    ``shadow``), no scores, no timeout. Exactly the v2 migration's copy, so a ledger migrated
    from v1 and one that received the same shadow signals new hold the same signal log."""
    return {
        **{k: shadow[k] for k in _SHADOW_COPIED},
        "timeout_s": None,
        "scores": "{}",
        "unit_id": "",
        "taken": False,
        "not_taken": shadow["reason"] or "shadow",
        "broker_trade_id": "",
    }


def signal_from_row(r: sa.RowMapping) -> EntrySignal:
    """The ``EntrySignal`` stored in ``signals`` row ``r``; an undecodable row raises
    ``LedgerError``."""
    try:
        return _signal_from_row(r)
    except _DECODE_ERRORS as exc:
        raise _undecodable("signals", f"(signal_id={r['signal_id']!r})", exc) from exc


def _json_object(column: str, text: str) -> dict[str, Any]:
    value = json.loads(text)  # a JSONDecodeError is a ValueError: reported as undecodable
    if not isinstance(value, dict):
        raise TypeError(f"{column} must be a JSON object, got {text!r}")
    return value


def _signal_from_row(r: sa.RowMapping) -> EntrySignal:
    extra = _json_object("extra", r["extra"])
    return EntrySignal(
        signal_id=r["signal_id"],
        at=from_epoch_us(r["at_us"]),
        instrument=r["instrument"],
        pocket=r["pocket"],
        strategy=r["strategy"],
        side=Side(r["side"]),
        price=float(r["price"]),
        sl_pips=_optional_float(r["sl_pips"]),
        tp_pips=_optional_float(r["tp_pips"]),
        timeout_s=_optional_float(r["timeout_s"]),
        scores=_json_object("scores", r["scores"]),  # EntrySignal checks every value
        unit_id=r["unit_id"],
        taken=bool(r["taken"]),
        not_taken=r["not_taken"],
        broker_trade_id=r["broker_trade_id"],
        config_version=r["config_version"],
        extra={str(k): str(v) for k, v in extra.items()},
    )
