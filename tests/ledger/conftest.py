"""Fixtures for the ledger contract suite: one ledger URL per backend, and a trade factory.

PostgreSQL runs in a throwaway database created for the test session (dropped at the end), with
a fresh schema per test selected through the connection's ``search_path``.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from autolearn.core.model import Side, Trade
from autolearn.ledger import SqlLedger

_schema_numbers = itertools.count()


@pytest.fixture(name="pg_database_url", scope="session")
def fixture_pg_database_url(pg_url: str) -> Iterator[sa.URL]:
    """A uniquely named throwaway PostgreSQL database for this session, dropped afterwards."""
    server = sa.make_url(pg_url)
    name = f"autolearn_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def pg_schema_url(db_url: sa.URL, schema: str) -> str:
    """A URL of a fresh, empty PostgreSQL schema ``schema`` in the test database."""
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine.dispose()
    scoped = db_url.update_query_dict({"options": f"-csearch_path={schema}"})
    return scoped.render_as_string(hide_password=False)


@pytest.fixture(name="new_pg_schema")
def fixture_new_pg_schema(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """A factory: the URL of a fresh, empty PostgreSQL schema with the given name."""
    return lambda schema: pg_schema_url(request.getfixturevalue("pg_database_url"), schema)


@pytest.fixture(
    name="ledger_url", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def fixture_ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty ledger location on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger' / 'trades.db'}"
    return pg_schema_url(request.getfixturevalue("pg_database_url"), f"t{next(_schema_numbers)}")


@pytest.fixture(name="ledger")
def fixture_ledger(ledger_url: str) -> Iterator[SqlLedger]:
    """An open, empty ledger (closed after the test)."""
    ledger = SqlLedger.open(ledger_url)
    yield ledger
    ledger.close()


T0 = datetime(2025, 10, 22, 8, 0, tzinfo=UTC)


@pytest.fixture(name="make_trade")
def fixture_make_trade() -> Callable[..., Trade]:
    """Build a valid trade; keyword arguments override fields (``close_at`` defaults to T0+1h)."""

    def make(**overrides: Any) -> Trade:
        close_at = overrides.pop("close_at", T0 + timedelta(hours=1))
        fields: dict[str, Any] = {
            "broker_trade_id": "1",
            "close_tx_id": "10",
            "instrument": "USD_JPY",
            "pocket": "macro",
            "strategy": "TrendMA",
            "side": Side.LONG,
            "units": 1000,
            "entry_price": 151.7,
            "close_price": 151.8,
            "entry_at": close_at - timedelta(minutes=5),
            "close_at": close_at,
            "pl_pips": 10.0,
            "pl_account": 100.0,
        }
        fields.update(overrides)
        return Trade(**fields)

    return make
