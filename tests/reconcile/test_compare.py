"""The pure comparison: a ledger built from the broker's trades is clean; any damage is found."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.core.model import Side, Trade, TradeState
from autolearn.core.timestamps import format_utc
from autolearn.reconcile.compare import (
    FindingKind,
    parse_broker_trades,
    reconcile,
    unmatched_ledger_ids,
)

SINCE = datetime(2025, 10, 20, tzinfo=UTC)
_PIP = {"USD_JPY": Decimal("0.01"), "EUR_USD": Decimal("0.0001")}
_TICK = {"USD_JPY": Decimal("0.001"), "EUR_USD": Decimal("0.00001")}
_FINAL_REASONS = ("MARKET_ORDER_TRADE_CLOSE", "TAKE_PROFIT_ORDER", "STOP_LOSS_ORDER")


@dataclasses.dataclass(frozen=True)
class Part:
    units: int
    ticks: int  # close price = entry + ticks * tick
    pl: Decimal
    after_s: int  # seconds after the previous close (or the opening)


@dataclasses.dataclass(frozen=True)
class Spec:
    trade_id: int
    instrument: str
    sign: int
    entry_ticks: int
    opened_min: int  # minutes after SINCE
    parts: tuple[Part, ...]
    reason: str

    @property
    def entry(self) -> Decimal:
        return self.entry_ticks * _TICK[self.instrument]

    def close_price(self, part: Part) -> Decimal:
        return self.entry + part.ticks * _TICK[self.instrument]

    @property
    def opened(self) -> datetime:
        return SINCE + timedelta(minutes=self.opened_min)

    def closes(self) -> list[datetime]:
        at, out = self.opened, []
        for part in self.parts:
            at += timedelta(seconds=part.after_s)
            out.append(at)
        return out

    def tx_ids(self) -> list[str]:
        return [str(self.trade_id * 10 + i + 1) for i in range(len(self.parts))]


_parts = st.lists(
    st.builds(
        Part,
        units=st.integers(1, 5000),
        ticks=st.integers(-500, 500),
        pl=st.decimals(min_value=-900, max_value=900, places=4),
        after_s=st.integers(1, 7200),
    ),
    min_size=1,
    max_size=4,
)


@st.composite
def _specs(draw: st.DrawFn) -> list[Spec]:
    ids = draw(st.lists(st.integers(1000, 99999), min_size=1, max_size=6, unique=True))
    out = []
    for trade_id in ids:
        instrument = draw(st.sampled_from(sorted(_PIP)))
        low, high = (140_000, 160_000) if instrument == "USD_JPY" else (100_000, 130_000)
        out.append(
            Spec(
                trade_id=trade_id,
                instrument=instrument,
                sign=draw(st.sampled_from((1, -1))),
                entry_ticks=draw(st.integers(low, high)),
                opened_min=draw(st.integers(0, 5000)),
                parts=tuple(draw(_parts)),
                reason=draw(st.sampled_from(_FINAL_REASONS)),
            )
        )
    return out


def _broker_json(spec: Spec) -> dict[str, Any]:
    """The v20 Trade object OANDA lists for a trade closed in ``spec.parts``."""
    units = sum(p.units for p in spec.parts)
    weighted = sum(p.units * spec.close_price(p) for p in spec.parts)
    last_tx = spec.tx_ids()[-1]
    doc: dict[str, Any] = {
        "id": str(spec.trade_id),
        "instrument": spec.instrument,
        "price": str(spec.entry),
        "openTime": format_utc(spec.opened),
        "initialUnits": str(spec.sign * units),
        "state": "CLOSED",
        "currentUnits": "0",
        "realizedPL": str(sum(p.pl for p in spec.parts)),
        "closeTime": format_utc(spec.closes()[-1]),
        "averageClosePrice": str(weighted / units),
        "closingTransactionIDs": spec.tx_ids(),
    }
    orders = (("TAKE_PROFIT_ORDER", "takeProfitOrder"), ("STOP_LOSS_ORDER", "stopLossOrder"))
    for reason, field in orders:
        filled = spec.reason == reason
        doc[field] = {"id": "1", "state": "FILLED" if filled else "CANCELLED"} | (
            {"fillingTransactionID": last_tx} if filled else {}
        )
    return doc


def _ledger_rows(spec: Spec) -> list[Trade]:
    """The rows the bot's ledger should hold: one per close, the last one CLOSED."""
    rows = []
    closes, txs = spec.closes(), spec.tx_ids()
    for i, part in enumerate(spec.parts):
        last = i == len(spec.parts) - 1
        close = spec.close_price(part)
        rows.append(
            Trade(
                broker_trade_id=str(spec.trade_id),
                close_tx_id=txs[i],
                instrument=spec.instrument,
                pocket="micro",
                strategy="MomentumPulse",
                side=Side.LONG if spec.sign > 0 else Side.SHORT,
                units=part.units,
                entry_price=float(spec.entry),
                close_price=float(close),
                entry_at=spec.opened,
                close_at=closes[i],
                pl_pips=float((close - spec.entry) * spec.sign / _PIP[spec.instrument]),
                pl_account=float(part.pl),
                broker_close_reason=spec.reason if last else "MARKET_ORDER_TRADE_CLOSE",
                state=TradeState.CLOSED if last else TradeState.PARTIAL,
            )
        )
    return rows


def _world(specs: list[Spec]) -> tuple[list[Any], list[Trade]]:
    broker, problems = parse_broker_trades([_broker_json(s) for s in specs])
    assert problems == []
    return broker, [row for s in specs for row in _ledger_rows(s)]


def _perturb(row: Trade, field: str) -> Trade:
    changes: dict[str, Any] = {
        "units": {"units": row.units + 1},
        "entry_price": {"entry_price": row.entry_price * 1.001},
        "close_price": {"close_price": row.close_price * 1.001},
        "pl_account": {"pl_account": row.pl_account + 0.05},
        "pl_pips": {"pl_pips": row.pl_pips + 0.5},
        "entry_at": {"entry_at": row.entry_at - timedelta(seconds=5)},
        "side": {"side": row.side.opposite},
        "instrument": {"instrument": "GBP_USD"},
        "close_tx_id": {"close_tx_id": "999999999"},
    }[field]
    return dataclasses.replace(row, **changes)


@settings(max_examples=60, deadline=None)
@given(_specs())
def test_ledger_built_from_the_broker_reconciles_clean(specs: list[Spec]) -> None:
    """Rows derived from the broker's trades, partial closes included, give no finding."""
    broker, rows = _world(specs)
    result = reconcile(broker, rows, since=SINCE)
    assert result.findings == ()
    assert result.clean and result.matched == result.broker_trades == len(specs)
    assert result.ledger_rows == len(rows)


@settings(max_examples=60, deadline=None)
@given(_specs(), st.data())
def test_removing_any_row_is_detected(specs: list[Spec], data: st.DataObject) -> None:
    """Whichever row is deleted, its trade is reported (missing, or its sums differ)."""
    broker, rows = _world(specs)
    gone = data.draw(st.integers(0, len(rows) - 1))
    result = reconcile(broker, rows[:gone] + rows[gone + 1 :], since=SINCE)
    assert rows[gone].broker_trade_id in {f.broker_trade_id for f in result.findings}
    kinds = {f.kind for f in result.findings}
    assert kinds <= {FindingKind.MISSING, FindingKind.DIFFERS}


@settings(max_examples=100, deadline=None)
@given(_specs(), st.data())
def test_perturbing_any_row_is_detected(specs: list[Spec], data: st.DataObject) -> None:
    """Any field of any row moved beyond its tolerance is reported against that trade."""
    broker, rows = _world(specs)
    i = data.draw(st.integers(0, len(rows) - 1))
    fields = [
        "units", "entry_price", "close_price", "pl_account", "pl_pips", "entry_at", "side",
        "instrument", "close_tx_id",
    ]  # fmt: skip
    final = rows[i].state is TradeState.CLOSED
    field = data.draw(st.sampled_from(fields + (["close_at", "reason"] if final else [])))
    if field == "close_at":
        changed = dataclasses.replace(rows[i], close_at=rows[i].close_at + timedelta(seconds=5))
    elif field == "reason":
        other = next(r for r in _FINAL_REASONS if r != rows[i].broker_close_reason)
        changed = dataclasses.replace(rows[i], broker_close_reason=other)
    else:
        changed = _perturb(rows[i], field)
    result = reconcile(broker, [*rows[:i], changed, *rows[i + 1 :]], since=SINCE)
    assert rows[i].broker_trade_id in {f.broker_trade_id for f in result.findings}, field


def _spec(trade_id: int = 5001, reason: str = "MARKET_ORDER_TRADE_CLOSE") -> Spec:
    return Spec(
        trade_id=trade_id,
        instrument="USD_JPY",
        sign=1,
        entry_ticks=151_652,
        opened_min=60,
        parts=(Part(units=1000, ticks=10, pl=Decimal("10.0000"), after_s=60),),
        reason=reason,
    )


def test_extra_rows_only_in_the_period_and_the_instrument_set() -> None:
    """A ledger trade unknown to the broker is extra; older or other-instrument rows are not."""
    broker, rows = _world([_spec()])
    template = rows[0]
    unknown = dataclasses.replace(template, broker_trade_id="777", close_tx_id="778")
    before = dataclasses.replace(
        template,
        broker_trade_id="555",
        entry_at=SINCE - timedelta(hours=2),
        close_at=SINCE - timedelta(hours=1),
    )
    elsewhere = dataclasses.replace(template, broker_trade_id="666", instrument="EUR_USD")
    still_open = dataclasses.replace(template, broker_trade_id="888", state=TradeState.PARTIAL)
    ledger = [*rows, unknown, before, elsewhere, still_open]
    result = reconcile(broker, ledger, since=SINCE)
    assert [(f.kind, f.broker_trade_id) for f in result.findings] == [(FindingKind.EXTRA, "777")]
    assert "unknown at the broker" in result.findings[0].detail
    assert unmatched_ledger_ids(broker, ledger, since=SINCE) == ["777"]
    # naming the instruments puts EUR_USD in scope: its row is extra too
    scoped = reconcile(broker, ledger, since=SINCE, instruments=frozenset({"USD_JPY", "EUR_USD"}))
    assert {f.broker_trade_id for f in scoped.findings} == {"666", "777"}


def test_trade_still_open_at_the_broker_is_extra() -> None:
    """A trade the ledger has closed but the broker lists as OPEN is reported, saying so."""
    doc = _broker_json(_spec()) | {"state": "OPEN", "currentUnits": "1000"}
    for key in ("closeTime", "averageClosePrice", "takeProfitOrder", "stopLossOrder"):
        doc.pop(key)
    doc["closingTransactionIDs"] = []
    broker, problems = parse_broker_trades([doc])
    assert problems == []
    result = reconcile(
        broker, _ledger_rows(_spec()), since=SINCE, instruments=frozenset({"USD_JPY"})
    )
    (finding,) = result.findings
    assert finding.kind is FindingKind.EXTRA and "OPEN" in finding.detail


def test_close_reason_from_the_filled_dependent_order() -> None:
    """A filled take profit names the reason; a ledger claiming an unfilled order is wrong."""
    tp_broker, tp_rows = _world([_spec(reason="TAKE_PROFIT_ORDER")])
    wrong = dataclasses.replace(tp_rows[0], broker_close_reason="STOP_LOSS_ORDER")
    (finding,) = reconcile(tp_broker, [wrong], since=SINCE).findings
    assert (finding.field, finding.ledger, finding.broker) == (
        "broker_close_reason",
        "STOP_LOSS_ORDER",
        "TAKE_PROFIT_ORDER",
    )
    market_broker, market_rows = _world([_spec(reason="MARKET_ORDER_TRADE_CLOSE")])
    assert reconcile(market_broker, market_rows, since=SINCE).clean
    claims_tp = dataclasses.replace(market_rows[0], broker_close_reason="TAKE_PROFIT_ORDER")
    (finding,) = reconcile(market_broker, [claims_tp], since=SINCE).findings
    assert finding.broker == "not TAKE_PROFIT_ORDER"


def test_tolerances_absorb_float_storage_not_real_differences() -> None:
    """P/L within a cent and prices within 1e-9 agree; a cent and a half does not."""
    broker, rows = _world([_spec()])
    near = dataclasses.replace(
        rows[0],
        pl_account=rows[0].pl_account + 0.009,
        close_price=rows[0].close_price * (1 + 1e-12),
    )
    assert reconcile(broker, [near], since=SINCE).clean
    off = dataclasses.replace(rows[0], pl_account=rows[0].pl_account + 0.015)
    (finding,) = reconcile(broker, [off], since=SINCE).findings
    assert (finding.field, finding.ledger, finding.broker) == ("pl_account", "10.015", "10.0")


def test_unreadable_broker_trade_is_a_finding_not_a_crash() -> None:
    """A malformed trade object is reported with the bad field; the run is not clean."""
    good = _broker_json(_spec())
    bad = good | {"id": "5002", "price": "-1"}
    broker, problems = parse_broker_trades([good, bad, "junk"])
    assert [p.broker_trade_id for p in problems] == ["5002", "#2"]
    assert "trade.price" in problems[0].detail
    result = reconcile(broker, _ledger_rows(_spec()), since=SINCE, unreadable=problems)
    assert not result.clean and result.counts()["unreadable"] == 2


NOW = SINCE + timedelta(days=7)


def test_a_ledger_close_after_now_is_reported_with_its_row() -> None:
    """A close in the future differs (the broker knows the trade) or is extra, never missing."""
    broker, rows = _world([_spec()])
    future = dataclasses.replace(rows[0], close_at=NOW + timedelta(hours=9))
    result = reconcile(broker, [future], since=SINCE, until=NOW)
    assert [(f.kind, f.field) for f in result.findings] == [(FindingKind.DIFFERS, "close_at")]
    assert "after now" in result.findings[0].detail
    assert rows[0].close_tx_id in result.findings[0].detail  # the ledger row is shown
    unknown = dataclasses.replace(future, broker_trade_id="9001", close_tx_id="9002")
    result = reconcile(broker, [*rows, unknown], since=SINCE, until=NOW)
    (finding,) = result.findings
    assert (finding.kind, finding.broker_trade_id) == (FindingKind.EXTRA, "9001")
    assert "after now" in finding.detail and "9002 CLOSED" in (finding.ledger or "")
    assert unmatched_ledger_ids(broker, [*rows, unknown], since=SINCE, until=NOW) == ["9001"]


def test_a_row_in_an_instrument_the_account_did_not_trade_differs() -> None:
    """A row whose instrument the account did not trade is matched by id: differs, not missing."""
    broker, rows = _world([_spec()])
    wrong = dataclasses.replace(rows[0], instrument="EUR_USD")
    result = reconcile(broker, [wrong], since=SINCE, until=NOW)
    kinds = {(f.kind, f.field) for f in result.findings}
    assert (FindingKind.DIFFERS, "instrument") in kinds
    assert all(f.kind is FindingKind.DIFFERS for f in result.findings)
    assert "EUR_USD" in result.findings[0].ledger  # type: ignore[operator]


def test_the_pl_tolerance_scales_with_the_number_of_rows() -> None:
    """Three partial rows of 0.12 agree with a realizedPL of 0.3705 (each row rounded alone)."""
    spec = dataclasses.replace(
        _spec(),
        parts=tuple(Part(units=1000, ticks=10, pl=Decimal("0.1235"), after_s=60) for _ in range(3)),
    )
    broker, rows = _world([spec])
    rounded = [dataclasses.replace(r, pl_account=0.12) for r in rows]
    assert reconcile(broker, rounded, since=SINCE, until=NOW).clean
    off = [*rounded[:2], dataclasses.replace(rounded[2], pl_account=0.09)]
    (finding,) = reconcile(broker, off, since=SINCE, until=NOW).findings
    assert finding.field == "pl_account" and "tolerance 0.03" in finding.detail
