"""The ledger spool and ``TradeWriter`` through an outage: nothing lost, nothing doubled, order
kept, and a spool that survives a ``kill -9`` of its writer (issue 19 item 6)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autolearn.core.model import EntrySignal, Side
from autolearn.errors import InputError, LedgerError, TrackedPathError
from autolearn.ledger import SqlLedger, TradeWriter, UpsertCounts
from autolearn.ledger.spool import Spool, spool_path
from autolearn.testing import make_trade

T0 = datetime(2025, 10, 22, 8, 0, tzinfo=UTC)


def _trade(i: int, pl: float = 1.0) -> Any:
    return make_trade(
        close_at=T0 + timedelta(minutes=i), pl_pips=pl, broker_trade_id=f"t{i}", close_tx_id="x"
    )


@pytest.fixture(name="locked")
def fixture_locked(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    """A SQLite ledger and another connection holding its write lock (an outage)."""
    path = tmp_path / "ledger.db"
    SqlLedger.open(str(path)).close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    yield path, blocker
    if blocker.in_transaction:
        blocker.execute("ROLLBACK")
    blocker.close()


def _writer(path: Path, spool_dir: Path, **kw: Any) -> TradeWriter:
    ledger = SqlLedger.open(str(path), sqlite_busy_timeout_ms=20)
    spool = Spool(spool_path(spool_dir, ledger.url))
    return TradeWriter(ledger, retries=1, backoff_s=0.0, spool=spool, **kw)


class TestSpool:
    def test_append_then_drain_in_order_and_empty(self, tmp_path: Path) -> None:
        """Values come back in the order appended, runs of one kind per write; the file is
        empty afterwards."""
        spool = Spool(tmp_path / "s.jsonl")
        sig = EntrySignal(
            signal_id="s1", at=T0, instrument="USD_JPY", pocket="micro", strategy="S",
            side=Side.LONG, price=150.0, scores={"z": 1.5}, taken=True,
        )  # fmt: skip
        for value in (_trade(1), _trade(2)):
            spool.append("trade", value)
        spool.append("signal", sig)
        spool.append("trade", _trade(3))
        assert spool.pending() == 4
        calls: list[tuple[str, list[Any]]] = []
        done = spool.drain(lambda kind, values: calls.append((kind, list(values))))
        assert calls == [
            ("trade", [_trade(1), _trade(2)]),
            ("signal", [sig]),
            ("trade", [_trade(3)]),
        ]
        assert (done.written, done.rejected) == (4, 0)
        assert spool.is_empty()

    def test_a_failed_drain_keeps_everything(self, tmp_path: Path) -> None:
        """The database failing mid-drain leaves the spool as it was."""
        from autolearn.errors import LedgerUnavailable

        spool = Spool(tmp_path / "s.jsonl")
        spool.append("trade", _trade(1))
        spool.append("trade", _trade(2))

        def down(_kind: str, _values: Any) -> None:
            raise LedgerUnavailable("down")

        with pytest.raises(LedgerUnavailable):
            spool.drain(down)
        assert spool.pending() == 2

    def test_torn_last_line_and_bad_values_do_not_block_the_rest(self, tmp_path: Path) -> None:
        """A torn last line (a crash mid-append) is dropped; an undecodable line and a value
        the ledger refuses for good go to ``.rejected``; the others are written."""
        spool = Spool(tmp_path / "s.jsonl")
        spool.append("trade", _trade(1))
        with spool.path.open("ab") as f:
            f.write(b"{not json\n")
        spool.append("trade", _trade(2))
        spool.append("trade", _trade(3))
        with spool.path.open("ab") as f:
            f.write(b'{"kind": "trade", "ro')  # torn
        written: list[str] = []

        def write(_kind: str, values: Any) -> None:
            if any(v.broker_trade_id == "t2" for v in values):
                raise InputError("t2 is implausible")
            written.extend(v.broker_trade_id for v in values)

        done = spool.drain(write)
        assert written == ["t1", "t3"]
        assert (done.written, done.rejected) == (2, 2)
        rejected = spool.rejected_path.read_text().splitlines()
        assert rejected[0] == "{not json" and '"t2"' in rejected[1]
        assert spool.is_empty()

    def test_refused_inside_a_checkout_unless_ignored(self, tmp_path: Path) -> None:
        """A spool directory git would see is refused before anything is written."""
        repo = tmp_path / "bot"
        repo.mkdir()
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        with pytest.raises(TrackedPathError):
            Spool.in_state_dir(repo / "spool", "sqlite:///x.db")
        (repo / ".gitignore").write_text("logs/\n")
        Spool.in_state_dir(repo / "logs" / "spool", "sqlite:///x.db")

    def test_one_file_per_ledger(self, tmp_path: Path) -> None:
        """Two ledgers never share a spool (a bot re-pointed elsewhere keeps them apart)."""
        assert spool_path(tmp_path, "sqlite:///a.db") != spool_path(tmp_path, "sqlite:///b.db")


class TestWriterThroughAnOutage:
    def test_spooled_while_locked_then_flushed_in_order(
        self, locked: tuple[Path, sqlite3.Connection], tmp_path: Path
    ) -> None:
        """Writes during the outage are spooled (zero counts); the first write after it sends
        them first, then itself; re-sending one is harmless."""
        path, blocker = locked
        writer = _writer(path, tmp_path / "spool")
        assert writer.record_trade(_trade(1)) == UpsertCounts()
        assert writer.record_trade(_trade(2, pl=-1.0)) == UpsertCounts()
        assert writer.pending == 2
        blocker.execute("COMMIT")
        assert writer.record_trade(_trade(2, pl=-4.0)) == UpsertCounts(updated=1)
        assert writer.pending == 0
        trades = {t.broker_trade_id: t.pl_pips for t in writer.ledger.trades()}
        assert trades == {"t1": 1.0, "t2": -4.0}  # the later value won: order kept
        writer.close()

    def test_without_a_spool_the_failure_is_raised(
        self, locked: tuple[Path, sqlite3.Connection]
    ) -> None:
        """No spool: the last transient failure is the bot's to log, as before."""
        path, _ = locked
        ledger = SqlLedger.open(str(path), sqlite_busy_timeout_ms=20)
        with (
            TradeWriter(ledger, retries=1, backoff_s=0.0) as writer,
            pytest.raises(LedgerError, match="locked"),
        ):
            writer.record_trade(_trade(1))

    def test_a_bad_value_is_raised_never_spooled(self, tmp_path: Path) -> None:
        """A value the ledger refuses for good raises at once and stays out of the spool."""
        path = tmp_path / "ledger.db"
        writer = _writer(path, tmp_path / "spool")
        with pytest.raises(LedgerError, match="NUL"):
            writer.record_trade(make_trade(close_at=T0, pl_pips=1.0, pocket="\x00"))
        assert writer.pending == 0
        writer.close()

    def test_backoff_doubles_up_to_its_cap(self, locked: tuple[Path, Any]) -> None:
        """The pauses between retries double and stop growing at ``max_backoff_s``."""
        path, _ = locked
        pauses: list[float] = []
        ledger = SqlLedger.open(str(path), sqlite_busy_timeout_ms=10)
        writer = TradeWriter(
            ledger, retries=5, backoff_s=0.1, max_backoff_s=0.3, sleep=pauses.append
        )
        with pytest.raises(LedgerError):
            writer.record_trade(_trade(1))
        assert pauses == [0.1, 0.2, 0.3, 0.3, 0.3]
        writer.close()


_SPOOLING_WRITER = r"""
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from autolearn.ledger import SqlLedger, TradeWriter
from autolearn.ledger.spool import Spool, spool_path
from autolearn.testing import make_trade
path, spool_dir, rows = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
ledger = SqlLedger.open(path, sqlite_busy_timeout_ms=20)
writer = TradeWriter(ledger, retries=0, spool=Spool(spool_path(spool_dir, ledger.url)))
t0 = datetime(2025, 10, 22, tzinfo=UTC)
for i in range(rows):
    writer.record_trade(make_trade(close_at=t0 + timedelta(minutes=i), pl_pips=1.0,
                                   broker_trade_id=f"k{i}", close_tx_id="x"))
print("PENDING", writer.pending, flush=True)
sys.stdin.readline()  # wait to be killed: spooled, never flushed
"""


def test_a_spool_survives_kill_9_of_its_writer(
    locked: tuple[Path, sqlite3.Connection], tmp_path: Path
) -> None:
    """A writer spools 50 trades during an outage and is SIGKILLed before any flush; the next
    writer on that state dir delivers all 50, once each."""
    path, blocker = locked
    spool_dir = tmp_path / "state" / "spool"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SPOOLING_WRITER, str(path), str(spool_dir), "50"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    lines = iter(proc.stdout.readline, b"")  # the writer's own log lines come first
    assert next(line for line in lines if line.startswith(b"PENDING")).split() == [
        b"PENDING",
        b"50",
    ]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    blocker.execute("COMMIT")  # the database is back
    with TradeWriter.open(str(path), spool_dir=spool_dir) as writer:
        assert writer.pending == 50
        assert writer.ledger.count_trades() == 0
        assert writer.flush().written == 50
        assert writer.ledger.count_trades() == 50
        assert writer.flush().written == 0
        # a crash after the upserts but before the spool was emptied re-sends: harmless
        again = writer.ledger.upsert_trades(writer.ledger.trades())
        assert again == UpsertCounts(unchanged=50)
