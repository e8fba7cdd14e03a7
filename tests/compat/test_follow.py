"""``ingest --follow``: only what is new, never a row skipped, never one imported twice."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autolearn.adapters.state import StateStore
from autolearn.errors import InputError, LedgerUnavailable
from autolearn.importers.follow import Watermark, follow_trades_db, run_follow
from autolearn.ledger.sql import SqlLedger
from autolearn.settings import load_registry
from tests.compat.pretend import SCHEMA, Fill, write_trades

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def fills(n: int, *, start: int = 0, hours_ago: float = 48.0) -> list[Fill]:
    styles = ("iso", "space_ns", "no_fraction")
    return [
        Fill(
            tx=10_000 + i,
            ticket=str(5_000 + i),
            pocket="micro" if i % 2 else "scalp",
            strategy="MomentumPulse",
            units=1000,
            entry=150.0,
            close=150.05 if i % 3 else 149.95,
            close_at=NOW - timedelta(hours=hours_ago) + timedelta(minutes=10 * i),
            style=styles[i % 3],
        )
        for i in range(start, start + n)
    ]


@pytest.fixture(name="db")
def _db(tmp_path: Path) -> Path:
    path = tmp_path / "logs" / "trades.db"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.commit()
    conn.close()
    return path


@pytest.fixture(name="env")
def _env(tmp_path: Path) -> tuple[StateStore, SqlLedger]:
    store = StateStore(tmp_path / "state", load_registry(None))
    ledger = SqlLedger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield store, ledger
    ledger.close()


def ledger_keys(ledger: SqlLedger) -> list[tuple[str, str]]:
    return sorted((t.broker_trade_id, t.close_tx_id) for t in ledger.trades())


class TestFollow:
    def test_imports_only_the_new_rows(self, db: Path, env: tuple[StateStore, SqlLedger]) -> None:
        """A second run imports nothing; new rows, in mixed formats, are imported once."""
        store, ledger = env
        write_trades(db, fills(12))
        first, counts = run_follow(db, store, ledger, now=NOW)
        assert (first.report.accepted_count, counts.inserted) == (12, 12)
        again, counts = run_follow(db, store, ledger, now=NOW)
        assert again.report.accepted_count == 0 and counts.inserted == 0
        write_trades(db, fills(5, start=12))
        third, counts = run_follow(db, store, ledger, now=NOW)
        assert (third.report.accepted_count, counts.inserted) == (5, 5)
        assert len(ledger_keys(ledger)) == 17

    def test_a_row_written_late_is_imported(
        self, db: Path, env: tuple[StateStore, SqlLedger]
    ) -> None:
        """A row that closes before the watermark (written late, far back) is not skipped."""
        store, ledger = env
        write_trades(db, fills(6))
        run_follow(db, store, ledger, now=NOW)
        old = fills(1, start=900, hours_ago=24 * 30)  # a month before the watermark
        write_trades(db, old)
        result, counts = run_follow(db, store, ledger, now=NOW)
        assert (result.late, counts.inserted) == (1, 1)
        assert ("5900", "10900") in ledger_keys(ledger)

    def test_restored_file_with_reused_rowids(
        self, db: Path, env: tuple[StateStore, SqlLedger]
    ) -> None:
        """New rows that reuse rowids after a restore are found by their close time and keys."""
        store, ledger = env
        write_trades(db, fills(8))
        run_follow(db, store, ledger, now=NOW)
        conn = sqlite3.connect(db)
        conn.execute("DELETE FROM trades WHERE rowid > 5")  # the backup had 5 rows
        conn.execute("DELETE FROM sqlite_sequence")
        conn.commit()
        conn.close()
        write_trades(db, fills(4, start=20))  # rowids 6..9 again, different trades
        _, counts = run_follow(db, store, ledger, now=NOW)
        assert counts.inserted == 4
        assert len(ledger_keys(ledger)) == 12

    def test_unknown_schema_version_is_refused(
        self, db: Path, env: tuple[StateStore, SqlLedger]
    ) -> None:
        """A v9 row stops the run with its rowid; the watermark stays."""
        store, ledger = env
        write_trades(db, fills(3))
        run_follow(db, store, ledger, now=NOW)
        write_trades(db, [Fill(**{**fills(1, start=3)[0].__dict__, "version": "v9"})])
        with pytest.raises(InputError, match=r"unknown schema version.*'v9'"):
            run_follow(db, store, ledger, now=NOW)
        assert len(ledger_keys(ledger)) == 3

    def test_half_written_file_is_refused(
        self, db: Path, env: tuple[StateStore, SqlLedger]
    ) -> None:
        """A truncated database is an InputError naming the file; nothing changes."""
        store, ledger = env
        write_trades(db, fills(40))
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 3] + b"\x00" * 100)
        for side in ("-wal", "-shm"):
            Path(f"{db}{side}").unlink(missing_ok=True)
        with pytest.raises(InputError, match="not a readable SQLite database"):
            run_follow(db, store, ledger, now=NOW)
        assert ledger_keys(ledger) == []

    def test_locked_database_is_transient(self, db: Path, tmp_path: Path) -> None:
        """A writer holding an exclusive lock past the busy timeout: LedgerUnavailable (exit 75)."""
        write_trades(db, fills(2))
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(LedgerUnavailable, match="locked by its writer"):
                follow_trades_db(db, Watermark(), now=NOW, busy_timeout_s=0.05)
        finally:
            conn.execute("ROLLBACK")
            conn.close()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(st.lists(st.integers(0, 60), min_size=1, max_size=6), min_size=1, max_size=5)
)
def test_every_row_lands_exactly_once(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[int]]
) -> None:
    """Whatever order and times rows arrive in (back in time included), after each follow the
    ledger holds exactly the accepted rows of the file: none skipped, none twice."""
    base = tmp_path_factory.mktemp("prop")
    db = base / "trades.db"
    conn = sqlite3.connect(db)
    conn.executescript(SCHEMA)
    conn.commit()
    conn.close()
    store = StateStore(base / "state", load_registry(None))
    ledger = SqlLedger.open(f"sqlite:///{base / 'ledger.db'}")
    try:
        written: set[tuple[str, str]] = set()
        for batch in batches:
            new = [fills(1, start=i, hours_ago=24 * 10)[0] for i in batch]
            write_trades(db, new)
            written |= {(f.ticket, str(f.tx)) for f in new}
            run_follow(db, store, ledger, now=NOW)
            assert ledger_keys(ledger) == sorted(written)
    finally:
        ledger.close()
