"""Rebuild ``usd_jpy_session.json`` from QuantRabbit's real records (see tests/data/PROVENANCE.md).

Run from the repo root: ``.venv/bin/python tests/data/oanda/build_fixtures.py``. Not a test.

Openings are OANDA's own answers, verbatim (``orders.db`` rows with ``status='filled'``:
``orderCreateTransaction`` and ``orderFillTransaction``) except that ``accountID`` and
``userID`` are replaced by placeholders. The TP/SL order transactions and the closing
``ORDER_FILL`` transactions are rebuilt in v20 shape from the ids listed in
``relatedTransactionIDs`` and from ``trades_home.db`` (QuantRabbit's own ledger, written from
the real closing fills: tx id, time, price, realizedPL, reason). ``expected`` is that ledger's
row for each trade, so the importer is checked against numbers it did not compute.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path

DATA = Path("/work/shared/data/trades/quantrabbit")
OUT = Path(__file__).with_name("usd_jpy_session.json")
ACCOUNT = "001-009-0000000-002"
TICKETS = [
    "4419", "4471", "4499", "4515", "4547", "4563", "4455", "4583",
    "4427", "4479", "4447", "4599", "5205", "7423",
]  # fmt: skip


def _scrub(tx: dict) -> dict:
    tx = dict(tx)
    if "accountID" in tx:
        tx["accountID"] = ACCOUNT
    if "userID" in tx:
        tx["userID"] = 0
    return tx


def _nanos(iso: str) -> str:
    # trades_home keeps microseconds; v20 sends nanoseconds with Z.
    date, frac = iso.replace("+00:00", "").split(".")
    return f"{date}.{frac.ljust(9, '0')}Z"


def main() -> None:
    orders = sqlite3.connect(f"file:{DATA / 'orders.db'}?mode=ro", uri=True)
    ledger = sqlite3.connect(f"file:{DATA / 'trades_home.db'}?mode=ro", uri=True)
    txs: dict[int, dict] = {}
    expected = []
    for ticket in TICKETS:
        (resp,) = orders.execute(
            "select response_json from orders where ticket_id=? and status='filled'", (ticket,)
        ).fetchone()
        body = json.loads(resp)
        create, fill = body["orderCreateTransaction"], body["orderFillTransaction"]
        txs[int(create["id"])] = _scrub(create)
        txs[int(fill["id"])] = _scrub(fill)
        related = [int(i) for i in body["relatedTransactionIDs"]]
        for kind, key, tx_id in (
            ("TAKE_PROFIT_ORDER", "takeProfitOnFill", related[2]),
            ("STOP_LOSS_ORDER", "stopLossOnFill", related[3]),
        ):
            if key in create and tx_id not in txs:
                txs[tx_id] = {
                    "id": str(tx_id),
                    "accountID": ACCOUNT,
                    "userID": 0,
                    "batchID": create["id"],
                    "time": fill["time"],
                    "type": kind,
                    "tradeID": fill["tradeOpened"]["tradeID"],
                    "price": create[key]["price"],
                    "timeInForce": "GTC",
                    "triggerCondition": "DEFAULT",
                    "reason": "ON_FILL",
                    "orderFillTransactionID": fill["id"],
                }
        row = ledger.execute(
            "select ticket_id,pocket,units,entry_price,close_price,pl_pips,entry_time,"
            "close_time,transaction_id,realized_pl,close_reason from trades where ticket_id=?",
            (ticket,),
        ).fetchone()
        tid, pocket, units, entry, close, pips, entry_t, close_t, close_id, pl, reason = row
        closed_units = str(-units)
        realized = f"{Decimal(str(pl)):.4f}"
        txs[close_id] = {
            "id": str(close_id),
            "accountID": ACCOUNT,
            "userID": 0,
            "batchID": str(close_id - 1),
            "time": _nanos(close_t),
            "type": "ORDER_FILL",
            "orderID": str(close_id - 1),
            "instrument": "USD_JPY",
            "units": closed_units,
            "requestedUnits": closed_units,
            "price": f"{close:.3f}",
            "pl": realized,
            "quotePL": realized.rstrip("0").rstrip("."),
            "financing": "0.0000",
            "baseFinancing": "0",
            "commission": "0.0000",
            "accountBalance": "339024.2039",
            "gainQuoteHomeConversionFactor": "1",
            "lossQuoteHomeConversionFactor": "1",
            "guaranteedExecutionFee": "0.0000",
            "quoteGuaranteedExecutionFee": "0",
            "halfSpreadCost": "0.8000",
            "fullVWAP": f"{close:.3f}",
            "reason": reason,
            "tradesClosed": [
                {
                    "tradeID": tid,
                    "units": closed_units,
                    "price": f"{close:.3f}",
                    "realizedPL": realized,
                    "financing": "0.0000",
                    "baseFinancing": "0",
                    "guaranteedExecutionFee": "0.0000",
                    "quoteGuaranteedExecutionFee": "0",
                    "halfSpreadCost": "0.8000",
                }
            ],
        }
        expected.append(
            {
                "broker_trade_id": tid,
                "close_tx_id": str(close_id),
                "pocket": pocket,
                "units_signed": units,
                "entry_price": entry,
                "close_price": close,
                "pl_pips": pips,
                "realized_pl": pl,
                "entry_time": entry_t,
                "close_time": close_t,
                "close_reason": reason,
            }
        )
    doc = {
        "provenance": (
            "QuantRabbit orders.db (real v20 answers, account/user ids replaced) + closing "
            "fills rebuilt from trades_home.db; see tests/data/PROVENANCE.md"
        ),
        "account_id": ACCOUNT,
        "transactions": [txs[k] for k in sorted(txs)],
        "expected": expected,
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
