"""PostgreSQL: connections killed under 4 bot writers lose no trade (issue 19 item 6).

Before the fix ``TradeWriter`` retried only SQLite's "database is locked": 3 rounds of
``pg_terminate_backend`` during 4 writers made 11 ``record_trade`` calls raise and 11 of 20,000
trades were lost. Now a transient failure is retried (bounded backoff) and, if it persists,
spooled in the writer's state directory and written back at the next call or ``flush``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from autolearn.ledger.sql import SqlLedger

pytestmark = pytest.mark.postgres

_WRITER = r"""
import json, sys, time
from datetime import UTC, datetime
from pathlib import Path
from autolearn.ledger import TradeWriter
from autolearn.testing import make_trade
url, name, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
spool_dir, start_at = Path(sys.argv[4]), float(sys.argv[5])
pauses = []
def sleep(s):
    pauses.append(s)
    time.sleep(s)
writer = TradeWriter.open(url, spool_dir=spool_dir, sleep=sleep)
time.sleep(max(0.0, start_at - time.time()))
spooled = 0
for i in range(rows):
    t = make_trade(close_at=datetime.now(UTC), pl_pips=1.0, broker_trade_id=f"{name}-{i}",
                   close_tx_id="c")
    counts = writer.record_trade(t)
    spooled += counts.inserted + counts.updated + counts.unchanged == 0
left = writer.pending
writer.flush()
print("RESULT", json.dumps({"retries": len(pauses), "spooled": spooled, "left": left,
                            "after_flush": writer.pending}), flush=True)
writer.close()
"""


# The writers' connections: every one to their database but the test's own row counter.
_WRITERS = "FROM pg_stat_activity WHERE datname = :db AND pid <> :counter"


def _poll(count: Callable[[], int], at_least: int, what: str) -> None:
    """Wait until ``count()`` reaches ``at_least`` (the writers are at work), 60 s at most."""
    deadline = time.monotonic() + 60
    while count() < at_least:
        assert time.monotonic() < deadline, f"never reached {at_least} {what}"
        time.sleep(0.05)


@pytest.fixture(name="fresh_db")
def fixture_fresh_db(pg_url: str) -> Iterator[tuple[str, str]]:
    """A brand-new database: ``(url, name)``; dropped afterwards."""
    server = sa.make_url(pg_url)
    name = f"autolearn_outage_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False), name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.mark.slow  # 5 processes, a commit per trade: ~15 s idle, ~45 s on a loaded machine
def test_killed_connections_lose_no_trade(
    fresh_db: tuple[str, str], pg_url: str, tmp_path: Path
) -> None:
    """4 writers x 400 trades, every backend of the database terminated 3 times meanwhile:
    1,600 rows stored, nothing left in any spool."""
    url, name = fresh_db
    SqlLedger.open(url).close()
    rows, workers = 400, 4
    start_at = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WRITER,
                url,
                f"w{w}",
                str(rows),
                str(tmp_path / f"s{w}"),
                str(start_at),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for w in range(workers)
    ]
    killer = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    rows_seen = sa.create_engine(url)
    killed: list[int] = []
    try:
        with killer.connect() as conn, rows_seen.connect() as own:
            where = {"db": name, "counter": own.exec_driver_sql("SELECT pg_backend_pid()").scalar()}

            def stored() -> int:
                return int(own.exec_driver_sql("SELECT count(*) FROM trades").scalar_one())

            def writers() -> int:
                return int(conn.execute(sa.text(f"SELECT count(*) {_WRITERS}"), where).scalar_one())

            _poll(stored, 200, "trades stored")  # the writers are at work (imports are slow)
            for _ in range(3):
                _poll(writers, 1, "writer connections")
                query = sa.text(f"SELECT count(pg_terminate_backend(pid)) {_WRITERS}")
                killed.append(int(conn.execute(query, where).scalar_one()))
                time.sleep(0.5)
    finally:
        killer.dispose()
        rows_seen.dispose()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
            line = next(x for x in out.splitlines() if x.startswith(b"RESULT"))
            results.append(json.loads(line.split(b" ", 1)[1]))
    assert all(n >= 1 for n in killed), killed  # each round really cut the writers off
    with SqlLedger.open(url) as ledger:
        assert ledger.count_trades() == workers * rows
        assert len({(t.broker_trade_id, t.close_tx_id) for t in ledger.trades()}) == workers * rows
    assert [r["after_flush"] for r in results] == [0] * workers, results
    print("writers:", results, "killed per round:", killed)  # shown with -s / on failure
