"""Fixtures for the OANDA tests: recorded-shape JSON, a real local v20 server, a client, a sink."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from autolearn.core.model import Trade
from autolearn.ledger._base import UpsertCounts
from autolearn.oanda.client import RetryPolicy, V20Client
from autolearn.testing.oanda_v20 import FakeV20Server

DATA = Path(__file__).resolve().parent.parent / "data" / "oanda"
TOKEN = "tok-0f3c9a1e7d2b4c58-SECRET-a9e1b77c"
ACCOUNT = "001-009-0000000-002"


class MemorySink:
    """The smallest idempotent TradeSink: trades keyed like the ledger, cursors in a dict."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Trade] = {}
        self.cursors: dict[str, str] = {}
        self.upsert_calls = 0

    def upsert_trades(self, trades: Iterable[Trade]) -> UpsertCounts:
        self.upsert_calls += 1
        inserted = updated = unchanged = 0
        for trade in trades:
            key = (trade.broker_trade_id, trade.close_tx_id)
            old = self.rows.get(key)
            if old is None:
                inserted += 1
            elif old == trade:
                unchanged += 1
            else:
                updated += 1
            self.rows[key] = trade
        return UpsertCounts(inserted, updated, unchanged)

    def get_cursor(self, name: str) -> str | None:
        return self.cursors.get(name)

    def set_cursor(self, name: str, value: str) -> None:
        self.cursors[name] = value


class SleepRecorder:
    """Stands in for time.sleep: records each backoff delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture(name="token")
def fixture_token() -> str:
    """The secret bearer token every test must keep out of logs, errors and reports."""
    return TOKEN


@pytest.fixture(name="account_id")
def fixture_account_id() -> str:
    """The placeholder account id used in the fixtures."""
    return ACCOUNT


@pytest.fixture(name="load_fixture")
def fixture_load_fixture() -> Callable[[str], dict[str, Any]]:
    """Load a recorded-shape JSON document from tests/data/oanda."""

    def load(name: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((DATA / name).read_text())
        return doc

    return load


@pytest.fixture(name="session")
def fixture_session(load_fixture: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """Fourteen real QuantRabbit USD_JPY trades (openings verbatim from OANDA) with expectations."""
    return load_fixture("usd_jpy_session.json")


@pytest.fixture(name="partial")
def fixture_partial(load_fixture: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """A partial close then final close, and a two-trade margin closeout (hand-checkable)."""
    return load_fixture("partial_and_closeout.json")


@pytest.fixture(name="serve")
def fixture_serve(token: str) -> Iterator[Callable[..., FakeV20Server]]:
    """Start FakeV20Server instances on 127.0.0.1:0 and stop them after the test."""
    started: list[FakeV20Server] = []

    def serve(transactions: Iterable[dict[str, Any]] = (), **kwargs: Any) -> FakeV20Server:
        server = FakeV20Server(
            account_id=ACCOUNT, token=token, transactions=transactions, **kwargs
        ).start()
        started.append(server)
        return server

    yield serve
    for server in started:
        server.stop()
        assert server.errors == [], f"fake server errors: {server.errors}"


@pytest.fixture(name="sleeps")
def fixture_sleeps() -> SleepRecorder:
    """A recorder passed as the client's sleep."""
    return SleepRecorder()


@pytest.fixture(name="make_client")
def fixture_make_client(token: str, sleeps: SleepRecorder) -> Iterator[Callable[..., V20Client]]:
    """Build V20Clients for a server with instant, recorded backoff and seeded jitter."""
    clients: list[V20Client] = []

    def make(server: FakeV20Server, **kwargs: Any) -> V20Client:
        kwargs.setdefault("timeout_s", 2.0)
        kwargs.setdefault("retry", RetryPolicy(max_attempts=4, base_delay_s=0.5))
        client = V20Client(
            token=token,
            base_url=server.base_url,
            sleep=sleeps,
            rng=random.Random(7),
            **kwargs,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture(name="sink")
def fixture_sink() -> MemorySink:
    """A fresh in-memory TradeSink."""
    return MemorySink()


@pytest.fixture(name="sink_factory")
def fixture_sink_factory() -> Callable[[], MemorySink]:
    """Make more in-memory sinks (comparisons between runs)."""
    return MemorySink
