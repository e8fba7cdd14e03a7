"""Broker truth against the ledger: which closed trades are missing, extra or different.

Functional core: no I/O, no clock. ``parse_broker_trades`` reads v20 Trade objects
(``GET /v3/accounts/{id}/trades?state=CLOSED``) into :class:`BrokerTrade` values with the same
readers and conventions as ``autolearn.oanda.transactions`` (decimal strings, RFC 3339 times,
``pl_account`` = ``realizedPL`` without financing, the fill ``reason`` vocabulary for the close
reason); a malformed trade becomes an ``unreadable`` finding, never an exception.
``reconcile`` compares them with ledger rows and returns every finding.

One broker trade may be several ledger rows (partial closes: ``PARTIAL`` rows then the final
``CLOSED`` row, keyed by ``(broker_trade_id, close_tx_id)``), so a trade is compared as a
group: the rows' units add up to the trade's initial units, their ``pl_account`` to its
``realizedPL``, their units-weighted close price to its ``averageClosePrice``; every row
carries the trade's instrument, side, entry price and open time; the last row's close time and
close reason are the trade's; each row's ``close_tx_id`` is one of the trade's
``closingTransactionIDs``; each row's ``pl_pips`` agrees with its own close price and the
broker's entry price. What a Trade object does not say (the time and reason of an
intermediate partial close) is not checked.

Rows are matched to a broker trade by id whatever their instrument, so a row that carries the
wrong instrument is a ``differs`` (``instrument``) with the row shown, never a ``missing``. A
ledger trade whose last close lies after the period's end (``until``, the run's now) is always
compared: a close in the future is never right (``differs`` on ``close_at`` when the broker
knows the trade, else ``extra``). A ledger trade unknown to the broker counts as ``extra`` only
when one of its rows is in an instrument in scope (a ledger shared with other instruments is not
"extra"). The P/L tolerance is per row: a trade closed in ``n`` parts may be ``n`` cents off.

The close reason is known from the Trade object only when one of its dependent orders
(take profit, stop loss, trailing stop, guaranteed stop) is ``FILLED`` by the closing
transaction: the fill's ``reason`` is then that order's type (``TAKE_PROFIT_ORDER``...). A
trade closed otherwise (market close, margin closeout) leaves the reason unverifiable, except
that a ledger claiming a dependent order the broker shows as not filled is a difference.

Must not: fetch, read the ledger, decide what a mismatch means for the learning loops, or fix
anything (the ledger is repaired by re-ingesting, by a human who has read the findings).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from autolearn.core.model import Side, Trade, TradeState, pip_size
from autolearn.core.timestamps import format_utc
from autolearn.oanda._fields import (
    Malformed,
    int_id,
    norm_id,
    read_decimal,
    read_id,
    read_instrument,
    read_price,
    read_time,
    read_units,
    show,
)

__all__ = [
    "DEPENDENT_ORDERS",
    "BrokerTrade",
    "Finding",
    "FindingKind",
    "Reconciliation",
    "Tolerances",
    "broker_trade",
    "parse_broker_trades",
    "reconcile",
    "unmatched_ledger_ids",
]

# v20 Trade field of each dependent order -> the ORDER_FILL ``reason`` when it closed the trade.
DEPENDENT_ORDERS: Mapping[str, str] = {
    "takeProfitOrder": "TAKE_PROFIT_ORDER",
    "stopLossOrder": "STOP_LOSS_ORDER",
    "trailingStopLossOrder": "TRAILING_STOP_LOSS_ORDER",
    "guaranteedStopLossOrder": "GUARANTEED_STOP_LOSS_ORDER",
}
_CLOSED = "CLOSED"


class FindingKind(StrEnum):
    MISSING = "missing"  # closed at the broker in the period, not in the ledger
    EXTRA = "extra"  # closed in the ledger in the period, not a closed trade at the broker
    DIFFERS = "differs"  # in both, a field disagrees beyond its tolerance
    UNREADABLE = "unreadable"  # the broker's trade object could not be read


@dataclass(frozen=True, slots=True, kw_only=True)
class Tolerances:
    """How far the ledger may be from the broker and still agree.

    ``price_rel`` is relative (v20 prices are exact decimals; only float storage differs);
    ``pl_account`` is absolute in the account currency *per ledger row* (a cent: each partial
    close's P/L is rounded on its own, so a trade of ``n`` rows may be ``n`` cents off);
    ``pl_pips`` absolute pips; ``time`` absolute (some QuantRabbit exports keep whole seconds).
    """

    price_rel: float = 1e-9
    pl_account: float = 0.01
    pl_pips: float = 0.01
    time: timedelta = timedelta(seconds=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerTrade:
    """What a v20 Trade object says about one trade (``close_*`` are None while it is open)."""

    trade_id: str
    instrument: str
    state: str
    units: int  # signed initial units: + long, - short
    entry_price: float
    open_time: datetime
    close_time: datetime | None = None
    average_close_price: float | None = None
    realized_pl: float = 0.0
    closing_tx_ids: tuple[str, ...] = ()
    close_reason: str | None = None  # None: not knowable from the Trade object
    not_close_reasons: frozenset[str] = field(default_factory=frozenset)

    @property
    def side(self) -> Side:
        return Side.LONG if self.units > 0 else Side.SHORT

    @property
    def closed(self) -> bool:
        return self.state == _CLOSED and self.close_time is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One disagreement; values are rendered as text (JSON-safe, comparable by eye)."""

    kind: FindingKind
    broker_trade_id: str
    instrument: str = ""
    field: str = ""
    ledger: str | None = None
    broker: str | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "broker_trade_id": self.broker_trade_id,
            "instrument": self.instrument,
            "field": self.field,
            "ledger": self.ledger,
            "broker": self.broker,
            "detail": self.detail,
        }

    def format(self) -> str:
        where = f"trade {self.broker_trade_id} {self.instrument}".rstrip()
        if self.kind is FindingKind.DIFFERS:
            return (
                f"{self.kind.value}: {where}: {self.field}: ledger {self.ledger} != broker "
                f"{self.broker}" + (f" ({self.detail})" if self.detail else "")
            )
        return f"{self.kind.value}: {where}: {self.detail}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconciliation:
    """The result: counts of what was compared and every finding, in trade id order."""

    since: datetime
    instruments: tuple[str, ...]
    broker_trades: int  # closed at the broker in the period
    ledger_trades: int  # closed in the ledger in the period (groups of rows)
    ledger_rows: int
    matched: int  # in both and equal
    findings: tuple[Finding, ...]

    @property
    def clean(self) -> bool:
        return not self.findings

    def counts(self) -> dict[str, int]:
        return {k.value: sum(1 for f in self.findings if f.kind is k) for k in FindingKind}


# -- reading the broker's trades ---------------------------------------------------------------
def broker_trade(obj: Mapping[str, object]) -> BrokerTrade:
    """One v20 Trade object; ``Malformed`` (a ``ValueError``) names the bad field."""
    trade_id = read_id(obj, "id", "trade")
    state = obj.get("state")
    if not isinstance(state, str) or not state:
        raise Malformed(f"trade.state: expected a string, got {show(state)}")
    closed = state == _CLOSED
    closing = obj.get("closingTransactionIDs", [])
    if not isinstance(closing, list):
        raise Malformed(f"trade.closingTransactionIDs: expected a list, got {show(closing)}")
    closing_ids = []
    for i, raw in enumerate(closing):
        tx_id = norm_id(raw)
        if tx_id is None:
            raise Malformed(f"trade.closingTransactionIDs[{i}]: not an id: {show(raw)}")
        closing_ids.append(tx_id)
    average = obj.get("averageClosePrice")
    reason, not_reasons = _close_reason(obj, closing_ids[-1] if closing_ids else None)
    return BrokerTrade(
        trade_id=trade_id,
        instrument=read_instrument(obj, "trade"),
        state=state,
        units=read_units(obj, "initialUnits", "trade"),
        entry_price=float(read_price(obj, "price", "trade")),
        open_time=read_time(obj, "openTime", "trade"),
        close_time=read_time(obj, "closeTime", "trade") if closed else None,
        average_close_price=(
            float(read_price(obj, "averageClosePrice", "trade")) if average is not None else None
        ),
        realized_pl=float(read_decimal(obj, "realizedPL", "trade", required=closed)),
        closing_tx_ids=tuple(closing_ids),
        close_reason=reason if closed else None,
        not_close_reasons=not_reasons if closed else frozenset(),
    )


def _close_reason(
    obj: Mapping[str, object], last_close_id: str | None
) -> tuple[str | None, frozenset[str]]:
    """The fill reason a FILLED dependent order implies, and the reasons known not to apply."""
    found: str | None = None
    not_reasons: set[str] = set()
    for key, reason in DEPENDENT_ORDERS.items():
        order = obj.get(key)
        if not isinstance(order, Mapping):
            continue
        filled_by = norm_id(order.get("fillingTransactionID"))
        if order.get("state") == "FILLED" and (last_close_id is None or filled_by == last_close_id):
            found = reason
        else:
            not_reasons.add(reason)
    return found, frozenset(not_reasons)


def parse_broker_trades(
    raw: Iterable[object],
) -> tuple[list[BrokerTrade], list[Finding]]:
    """Readable trades, and an ``unreadable`` finding for each one that is not."""
    trades: list[BrokerTrade] = []
    problems: list[Finding] = []
    for position, obj in enumerate(raw):
        if not isinstance(obj, Mapping):
            problems.append(
                Finding(
                    kind=FindingKind.UNREADABLE,
                    broker_trade_id=f"#{position}",
                    detail=f"not an object: {type(obj).__name__}",
                )
            )
            continue
        try:
            trades.append(broker_trade(obj))
        except (ValueError, ArithmeticError) as exc:
            problems.append(
                Finding(
                    kind=FindingKind.UNREADABLE,
                    broker_trade_id=norm_id(obj.get("id")) or f"#{position}",
                    instrument=str(obj.get("instrument", ""))[:20],
                    detail=str(exc),
                )
            )
    return trades, problems


# -- comparing ----------------------------------------------------------------------------------
def _groups(ledger: Iterable[Trade]) -> dict[str, list[Trade]]:
    """Ledger rows by broker trade id, whatever their instrument, in close order."""
    groups: dict[str, list[Trade]] = {}
    for row in ledger:
        groups.setdefault(row.broker_trade_id, []).append(row)
    for rows in groups.values():
        rows.sort(key=lambda t: (t.close_at, t.state is TradeState.CLOSED, t.close_tx_id))
    return groups


def _ledger_closed_in(
    rows: Sequence[Trade], since: datetime, b: BrokerTrade | None, scope: frozenset[str]
) -> bool:
    """The ledger says this trade closed (a CLOSED row) in the period or after its end, and it
    is this account's business: the broker knows it in a scoped instrument, or a row claims one.
    """
    closed = any(r.state is TradeState.CLOSED for r in rows)
    ours = (b is not None and b.instrument in scope) or any(r.instrument in scope for r in rows)
    return closed and since <= rows[-1].close_at and ours


def _in_period(b: BrokerTrade, since: datetime, until: datetime | None) -> bool:
    at = b.close_time
    return b.closed and at is not None and since <= at and (until is None or at <= until)


def _scope(
    broker: Sequence[BrokerTrade],
    since: datetime,
    until: datetime | None,
    instruments: frozenset[str] | None,
) -> frozenset[str]:
    if instruments is not None:
        return instruments
    return frozenset(b.instrument for b in broker if _in_period(b, since, until))


def unmatched_ledger_ids(
    broker: Sequence[BrokerTrade],
    ledger: Sequence[Trade],
    *,
    since: datetime,
    until: datetime | None = None,
    instruments: frozenset[str] | None = None,
) -> list[str]:
    """Ledger trades closed in the period that no fetched broker trade explains.

    The shell looks each up by id before calling ``reconcile`` (a trade held longer than the
    paging reached back, or one the broker still has open), so ``extra`` means extra.
    """
    scope = _scope(broker, since, until, instruments)
    known = {b.trade_id for b in broker}
    return sorted(
        (
            trade_id
            for trade_id, rows in _groups(ledger).items()
            if trade_id not in known and _ledger_closed_in(rows, since, None, scope)
        ),
        key=lambda t: (int_id(t), t),
    )


def reconcile(
    broker: Sequence[BrokerTrade],
    ledger: Sequence[Trade],
    *,
    since: datetime,
    until: datetime | None = None,
    instruments: frozenset[str] | None = None,
    tolerances: Tolerances | None = None,
    unreadable: Sequence[Finding] = (),
) -> Reconciliation:
    """Every missing, extra and differing trade closed since ``since``.

    Args:
        broker: the broker's trades (closed ones in the period, plus any looked up by id).
        ledger: ledger rows; they may reach back before ``since`` (earlier partial closes of a
            trade closed in the period) and forward past ``until`` (a close in the future is
            reported); rows of other instruments count only by the id of a broker trade.
        since: start of the period (a trade belongs to it by its final close time).
        until: end of the period (the run's ``now``; None: open-ended).
        instruments: the instruments compared; default: those of the broker's trades closed
            in the period (a ledger shared with other accounts/instruments is not "extra").
        unreadable: findings from ``parse_broker_trades``, carried into the result.
    """
    tol = tolerances or Tolerances()
    scope = _scope(broker, since, until, instruments)
    by_id = {b.trade_id: b for b in broker}
    groups = _groups(ledger)
    broker_in = {
        t for t, b in by_id.items() if b.instrument in scope and _in_period(b, since, until)
    }
    ledger_in = {
        t for t, rows in groups.items() if _ledger_closed_in(rows, since, by_id.get(t), scope)
    }
    findings: list[Finding] = list(unreadable)
    matched = 0
    for trade_id in sorted(broker_in | ledger_in, key=lambda t: (int_id(t), t)):
        b = by_id.get(trade_id)
        rows = groups.get(trade_id, [])
        if b is None or not b.closed:
            findings.append(_extra(trade_id, rows, b, until))
        elif not rows:
            findings.append(_missing(b))
        else:
            found = _differences(b, rows, tol, until)
            findings += found
            matched += not found
    return Reconciliation(
        since=since,
        instruments=tuple(sorted(scope)),
        broker_trades=len(broker_in),
        ledger_trades=len(ledger_in),
        ledger_rows=sum(len(groups[t]) for t in ledger_in),
        matched=matched,
        findings=tuple(findings),
    )


def _extra(
    trade_id: str, rows: Sequence[Trade], b: BrokerTrade | None, until: datetime | None
) -> Finding:
    last = rows[-1]
    at_broker = (
        "unknown at the broker" if b is None else f"the broker has it {b.state} (not closed)"
    )
    future = (
        f"; its close lies after now ({format_utc(until)})"
        if until is not None and last.close_at > until
        else ""
    )
    return Finding(
        kind=FindingKind.EXTRA,
        broker_trade_id=trade_id,
        instrument=last.instrument,
        ledger=_show_rows(rows),
        detail=f"{at_broker}{future}; ledger: {len(rows)} row(s), "
        f"{sum(r.units for r in rows)} units, P/L {_num(sum(r.pl_account for r in rows))}, "
        f"closed {format_utc(last.close_at)}",
    )


_ROWS_SHOWN = 4


def _show_rows(rows: Sequence[Trade]) -> str:
    """The ledger rows themselves (the first few), so a human can find and fix them."""
    shown = [
        f"{r.close_tx_id or '-'} {r.state.value} {r.instrument} {r.side.value} {r.units}u "
        f"{_num(r.entry_price)}->{_num(r.close_price)} closed {format_utc(r.close_at)} "
        f"P/L {_num(r.pl_account)}"
        for r in rows[:_ROWS_SHOWN]
    ]
    more = f"; +{len(rows) - _ROWS_SHOWN} more" if len(rows) > _ROWS_SHOWN else ""
    return f"{len(rows)} row(s): " + "; ".join(shown) + more


def _missing(b: BrokerTrade) -> Finding:
    closed = format_utc(b.close_time) if b.close_time else "?"
    return Finding(
        kind=FindingKind.MISSING,
        broker_trade_id=b.trade_id,
        instrument=b.instrument,
        broker=f"closed {closed}",
        detail=f"not in the ledger; broker: {b.units} units at {_num(b.entry_price)}, closed "
        f"{closed} at {_num(b.average_close_price)}, realizedPL {_num(b.realized_pl)}, "
        f"closing transactions {', '.join(b.closing_tx_ids) or '?'}",
    )


def _num(value: float | None) -> str:
    return "?" if value is None else repr(value)


def _price_equal(a: float, b: float, rel: float) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=0.0)


_Diff = tuple[str, object, object, str]  # field, ledger value, broker value, detail
_Pred = Callable[[Trade], bool]
_Show = Callable[[Trade], object]


def _differences(
    b: BrokerTrade, rows: Sequence[Trade], tol: Tolerances, until: datetime | None = None
) -> list[Finding]:
    return [
        Finding(
            kind=FindingKind.DIFFERS,
            broker_trade_id=b.trade_id,
            instrument=b.instrument,
            field=name,
            ledger=_text(ledger),
            broker=_text(broker),
            detail=detail,
        )
        for name, ledger, broker, detail in (
            *_row_diffs(b, rows, tol),
            *_sum_diffs(b, rows, tol),
            *_close_diffs(b, rows[-1], tol, until),
        )
    ]


def _row_diffs(b: BrokerTrade, rows: Sequence[Trade], tol: Tolerances) -> list[_Diff]:
    """What every row must share with the trade; one finding per field (its first bad row)."""
    pip = Decimal(str(pip_size(b.instrument)))

    def pips(r: Trade) -> float:  # exact decimals, like the importer's pl_pips
        return float(
            (Decimal(repr(r.close_price)) - Decimal(repr(b.entry_price))) * b.side.sign / pip
        )

    checks: list[tuple[str, _Pred, _Show, _Show, str]] = [
        ("instrument", lambda r: r.instrument != b.instrument, lambda r: r.instrument,
         lambda r: b.instrument, ""),
        ("side", lambda r: r.side is not b.side, lambda r: r.side.value,
         lambda r: b.side.value, ""),
        ("entry_price", lambda r: not _price_equal(r.entry_price, b.entry_price, tol.price_rel),
         lambda r: r.entry_price, lambda r: b.entry_price, ""),
        ("entry_at", lambda r: abs(r.entry_at - b.open_time) > tol.time,
         lambda r: format_utc(r.entry_at), lambda r: format_utc(b.open_time), ""),
        ("pl_pips", lambda r: abs(r.pl_pips - pips(r)) > tol.pl_pips, lambda r: r.pl_pips, pips,
         "from the row's close price; "),
        ("close_tx_id", lambda r: _stray_close(b, r),
         lambda r: r.close_tx_id, lambda r: ", ".join(b.closing_tx_ids),
         "not one of the broker's closing transactions; "),
    ]  # fmt: skip
    out: list[_Diff] = []
    for name, bad, ledger, broker, why in checks:
        row = next((r for r in rows if bad(r)), None)
        if row is not None:
            out.append((name, ledger(row), broker(row), why + _row(row)))
    return out


def _stray_close(b: BrokerTrade, row: Trade) -> bool:
    """A row whose close transaction the broker does not list (rows without one: unknown)."""
    return bool(b.closing_tx_ids and row.close_tx_id and row.close_tx_id not in b.closing_tx_ids)


def _sum_diffs(b: BrokerTrade, rows: Sequence[Trade], tol: Tolerances) -> list[_Diff]:
    """What the rows add up to: units, realized P/L, the units-weighted close price."""
    out: list[_Diff] = []
    units = sum(r.units for r in rows)
    of = f"sum of {len(rows)} row(s)"
    if units != abs(b.units):
        out.append(("units", units, abs(b.units), of))
    if b.average_close_price is not None and units > 0:
        average = sum(r.close_price * r.units for r in rows) / units
        if not _price_equal(average, b.average_close_price, tol.price_rel):
            what = "close price" if len(rows) == 1 else f"units-weighted of {len(rows)} rows"
            out.append(("close_price", average, b.average_close_price, what))
    pl = sum(r.pl_account for r in rows)
    limit = tol.pl_account * len(rows)  # each row's P/L was rounded on its own
    if abs(pl - b.realized_pl) > limit:
        out.append(("pl_account", round(pl, 10), b.realized_pl, f"{of}, tolerance {limit:g}"))
    return out


def _close_diffs(
    b: BrokerTrade, last: Trade, tol: Tolerances | None = None, until: datetime | None = None
) -> list[_Diff]:
    """The final close: its time and, when the Trade object tells it, its reason."""
    out: list[_Diff] = []
    limit = (tol or Tolerances()).time
    if b.close_time is not None and abs(last.close_at - b.close_time) > limit:
        why = (
            f"the ledger's close lies after now ({format_utc(until)}); "
            if until is not None and last.close_at > until
            else ""
        )
        out.append(
            ("close_at", format_utc(last.close_at), format_utc(b.close_time), why + _row(last))
        )
    reason = last.broker_close_reason
    if b.close_reason is not None and reason != b.close_reason:
        out.append(("broker_close_reason", reason, b.close_reason, _row(last)))
    elif b.close_reason is None and reason in b.not_close_reasons:
        why = f"the broker's order was not filled by the close; {_row(last)}"
        out.append(("broker_close_reason", reason, f"not {reason}", why))
    return out


def _row(row: Trade) -> str:
    return (
        f"row close_tx_id={row.close_tx_id or '-'} {row.state.value} {row.instrument} "
        f"closed {format_utc(row.close_at)}"
    )


def _text(value: object) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)
