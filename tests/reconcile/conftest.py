"""Fixtures of the reconcile tests: the real-shaped OANDA session, a local v20 server, a ledger.

``broker_trades`` turns a transaction log into the v20 Trade objects OANDA would list, with
what ``FakeV20Server.derive_trades`` leaves out: the units-weighted ``averageClosePrice`` of a
trade closed in parts, and the take-profit / stop-loss orders marked ``FILLED`` by the closing
fill (or ``CANCELLED``) as OANDA shows them on a closed trade.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import autolearn.cli._reconcile  # noqa: F401  registers reconcile/init (until cli/__init__ does)
from autolearn.adapters.state import StateStore
from autolearn.ledger.sql import SqlLedger
from autolearn.oanda.client import RetryPolicy, V20Client
from autolearn.settings import load_registry
from autolearn.testing.oanda_v20 import FakeV20Server, derive_trades

DATA = Path(__file__).resolve().parent.parent / "data" / "oanda"
TOKEN = "tok-7c1e55d0a4b94e2f-RECONCILE-SECRET"
ACCOUNT = "001-009-0000000-002"
_ORDER_FIELD = {
    "TAKE_PROFIT_ORDER": "takeProfitOrder",
    "STOP_LOSS_ORDER": "stopLossOrder",
}


def _broker_trades(transactions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    trades = derive_trades(transactions)
    by_id = {str(t["id"]): t for t in transactions}
    for trade in trades.values():
        closes = [by_id[i] for i in trade["closingTransactionIDs"]]
        entries = [
            c
            for tx in closes
            for c in [*(tx.get("tradesClosed") or []), tx.get("tradeReduced") or {}]
            if str(c.get("tradeID")) == trade["id"]
        ]
        if entries:
            units = sum(abs(Decimal(c["units"])) for c in entries)
            weighted = sum(abs(Decimal(c["units"])) * Decimal(c["price"]) for c in entries)
            trade["averageClosePrice"] = str(weighted / units)
        if trade.get("state") != "CLOSED":
            continue
        final = closes[-1]
        for reason, field in _ORDER_FIELD.items():
            order: dict[str, Any] = {"id": f"{trade['id']}-{field}", "tradeID": trade["id"]}
            if final.get("reason") == reason:
                order.update(state="FILLED", fillingTransactionID=str(final["id"]))
            else:
                order.update(state="CANCELLED", cancellingTransactionID=str(final["id"]))
            trade[field] = order
    return list(trades.values())


@pytest.fixture(name="session")
def fixture_session() -> dict[str, Any]:
    """Fourteen real QuantRabbit USD_JPY trades in v20 transaction shape (tests/data/oanda)."""
    doc: dict[str, Any] = json.loads((DATA / "usd_jpy_session.json").read_text())
    return doc


@pytest.fixture(name="partial")
def fixture_partial() -> dict[str, Any]:
    """A partial close then a final close, and a two-trade margin closeout."""
    doc: dict[str, Any] = json.loads((DATA / "partial_and_closeout.json").read_text())
    return doc


@pytest.fixture(name="broker_trades")
def fixture_broker_trades() -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """The v20 Trade objects of a transaction log, with average close price and filled orders."""
    return _broker_trades


@pytest.fixture(name="serve")
def fixture_serve() -> Iterator[Callable[..., FakeV20Server]]:
    """Start FakeV20Servers for the test account (token ``TOKEN``) and stop them afterwards."""
    started: list[FakeV20Server] = []

    def serve(transactions: list[dict[str, Any]], **kwargs: Any) -> FakeV20Server:
        kwargs.setdefault("trades", _broker_trades(transactions))
        server = FakeV20Server(
            account_id=ACCOUNT, token=TOKEN, transactions=transactions, **kwargs
        ).start()
        started.append(server)
        return server

    yield serve
    for server in started:
        server.stop()
        assert server.errors == [], server.errors


@pytest.fixture(name="client_for")
def fixture_client_for() -> Iterator[Callable[[FakeV20Server], V20Client]]:
    """A V20Client on a server, with instant backoff."""
    clients: list[V20Client] = []

    def make(server: FakeV20Server) -> V20Client:
        client = V20Client(
            token=TOKEN,
            base_url=server.base_url,
            retry=RetryPolicy(max_attempts=2, base_delay_s=0.0),
            sleep=lambda _s: None,
            rng=random.Random(1),
            timeout_s=2.0,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture(name="ledger_url")
def fixture_ledger_url(tmp_path: Path) -> str:
    """A fresh SQLite ledger URL in tmp_path."""
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture(name="ledger")
def fixture_ledger(ledger_url: str) -> Iterator[SqlLedger]:
    """The ledger at ``ledger_url``, open."""
    ledger = SqlLedger.open(ledger_url)
    yield ledger
    ledger.close()


@pytest.fixture(name="store")
def fixture_store(tmp_path: Path) -> StateStore:
    """A state store in tmp_path with the packaged registry."""
    return StateStore(tmp_path / "state", load_registry(None))
