"""PostgreSQL: concurrent first ingests on a fresh database lose nothing (issue 13, item 8).

Four real processes open the same brand-new database at the same instant and upsert their
rows. Before the fix, 1-3 of them died in the create-schema race (unique violation on
``pg_type_typname_nsp_index``, ``deadlock detected``) with exit 65 and their rows were lost.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from autolearn.errors import LedgerError, LedgerUnavailable
from autolearn.ledger.sql import SqlLedger

pytestmark = pytest.mark.postgres

_WRITER = r"""
import sys, time
from datetime import UTC, datetime, timedelta
from autolearn.testing import make_trade
from autolearn.ledger.sql import SqlLedger
url, worker, rows, start_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
t0 = datetime(2025, 10, 1, tzinfo=UTC)
trades = [
    make_trade(close_at=t0 + timedelta(seconds=i), pl_pips=1.0,
               broker_trade_id=f"w{worker}-{i}", close_tx_id=str(i))
    for i in range(rows)
]
time.sleep(max(0.0, start_at - time.time()))
try:
    with SqlLedger.open(url) as ledger:
        ledger.upsert_trades(trades)
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(getattr(exc, "exit_code", 70))
"""


@pytest.fixture(name="fresh_db")
def fixture_fresh_db(pg_url: str) -> Iterator[Callable[[], str]]:
    """``fresh_db()``: a brand-new database (no schema yet); all are dropped afterwards."""
    server = sa.make_url(pg_url)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    names: list[str] = []

    def make() -> str:
        name = f"autolearn_first_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        names.append(name)
        return server.set(database=name).render_as_string(hide_password=False)

    try:
        yield make
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.mark.parametrize("round_", range(3))  # the old race hit about 2 rounds in 3
def test_four_concurrent_first_ingests_keep_every_row(
    fresh_db: Callable[[], str], round_: int
) -> None:
    """4 processes x 1,875 rows on a fresh database: all exit 0, 7,500 rows stored."""
    url = fresh_db()
    rows, workers = 1_875, 4
    start_at = time.time() + 3.5  # after every interpreter has imported autolearn
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, url, str(w), str(rows), str(start_at)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert [code for code, _ in results] == [0] * workers, results
    with SqlLedger.open(url) as ledger:
        assert ledger.count_trades() == rows * workers


def test_unreachable_server_is_transient() -> None:
    """A database that does not answer is LedgerUnavailable (exit 75), not bad data (65)."""
    with pytest.raises(LedgerUnavailable) as caught:
        SqlLedger.open("postgresql+psycopg://u:pw@127.0.0.1:1/db?connect_timeout=2")
    assert caught.value.exit_code == 75
    assert isinstance(caught.value, LedgerError)  # callers catching LedgerError still do
    assert "pw" not in str(caught.value)
