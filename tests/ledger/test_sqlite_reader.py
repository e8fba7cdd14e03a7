"""``SqliteReader`` (the tune run's ledger) reads what ``SqlLedger`` reads, from the same file.

The reader answers the hot reads on the stdlib driver and decodes trades through the trusted
constructor; everything it answers is compared here with ``SqlLedger``'s answer on the same
ledger, including the undecodable rows ``SqlLedger`` refuses, and every ledger it must not read
(not SQLite, not a file, not the current schema) is shown to open as ``SqlLedger`` instead.
"""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autolearn.core.model import EntrySignal, ShadowSignal, Side, Trade, TradeState
from autolearn.errors import LedgerError
from autolearn.ledger import Ledger, PocketFiltered, SqlLedger
from autolearn.ledger._engine import SQLITE_BUSY_TIMEOUT_MS
from autolearn.ledger._rows import TRADE_COLUMNS, _trade_from_row, trade_from_values
from autolearn.ledger.sqlite_reader import BUSY_TIMEOUT_MS, SqliteReader, open_reader

T0 = datetime(2025, 10, 22, 8, 0, tzinfo=UTC)
MakeTrade = Callable[..., Trade]
_POCKETS = ("micro", "macro", "scalp")


@pytest.fixture(name="path")
def fixture_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture(name="filled")
def fixture_filled(path: Path, make_trade: MakeTrade) -> Iterator[SqlLedger]:
    """A SQLite ledger holding trades of three pockets, ties in close time, signals, shadows."""
    ledger = SqlLedger.open(f"sqlite:///{path}")
    trades = [
        make_trade(
            broker_trade_id=f"{i % 7}",
            close_tx_id=f"{i}",
            pocket=_POCKETS[i % 3],
            strategy=("A", "B")[i % 2],
            instrument=("USD_JPY", "EUR_USD")[i % 5 == 0],
            close_at=T0 + timedelta(minutes=i // 2),  # pairs close at the same instant
            pl_pips=float(i % 5 - 2),
            exit_reason=("tp_hit", "")[i % 2],
            state=TradeState.PARTIAL if i % 11 == 0 else TradeState.CLOSED,
            side=Side.SHORT if i % 3 else Side.LONG,
        )
        for i in range(60)
    ]
    ledger.upsert_trades(trades)
    ledger.upsert_signals(
        EntrySignal(
            signal_id=f"s{i}",
            at=T0 + timedelta(minutes=i),
            instrument="USD_JPY",
            pocket=_POCKETS[i % 3],
            strategy="A",
            side=Side.LONG,
            price=150.0,
            scores={"edge": i / 10},
            taken=i % 2 == 0,
            not_taken="" if i % 2 == 0 else "threshold",
            extra={"k": str(i)},
        )
        for i in range(12)
    )
    ledger.upsert_shadow_signals(
        ShadowSignal(
            signal_id=f"h{i}",
            at=T0 + timedelta(minutes=i),
            instrument="USD_JPY",
            pocket=_POCKETS[i % 3],
            strategy="B",
            side=Side.SHORT,
            price=150.0,
            outcome_pips=None if i % 2 else 1.5,
        )
        for i in range(6)
    )
    yield ledger
    ledger.close()


@pytest.fixture(name="reader")
def fixture_reader(filled: SqlLedger, path: Path) -> Iterator[SqliteReader]:
    reader = SqliteReader.try_open(f"sqlite:///{path}")
    assert reader is not None
    yield reader
    reader.close()


class TestSameAnswers:
    """Every read the reader answers itself equals ``SqlLedger``'s, in the same order."""

    @pytest.mark.parametrize(
        "filters",
        [
            {},
            {"closed_since": T0 + timedelta(minutes=3)},
            {"closed_until": T0 + timedelta(minutes=7)},
            {"closed_since": T0 + timedelta(minutes=2), "closed_until": T0 + timedelta(minutes=9)},
            {"pocket": "micro"},
            {"strategy": "B", "instrument": "EUR_USD"},
            {"pocket": "scalp", "closed_since": T0 + timedelta(minutes=20)},
        ],
    )
    def test_trades(self, filled: SqlLedger, reader: SqliteReader, filters: dict[str, Any]) -> None:
        """Trades and their order (close time, then ids) with any combination of filters."""
        expected = filled.trades(**filters)
        assert expected  # the case reads something
        assert reader.trades(**filters) == expected

    @pytest.mark.parametrize("pockets", [{"micro"}, {"micro", "scalp"}, set(_POCKETS), set()])
    def test_trades_in_pockets_is_the_filtered_window(
        self, filled: SqlLedger, reader: SqliteReader, pockets: set[str]
    ) -> None:
        """Both ledgers filter pockets in SQL exactly as the tuner filtered them in Python."""
        since, until = T0 + timedelta(minutes=4), T0 + timedelta(minutes=25)
        window = filled.trades(closed_since=since, closed_until=until)
        expected = [t for t in window if t.pocket in pockets]
        got = reader.trades_in_pockets(pockets, closed_since=since, closed_until=until)
        assert got == expected
        assert filled.trades_in_pockets(pockets, closed_since=since, closed_until=until) == got

    def test_counts_and_last_close(self, filled: SqlLedger, reader: SqliteReader) -> None:
        assert reader.count_trades() == filled.count_trades() == 60
        assert reader.last_close_at() == filled.last_close_at()

    @pytest.mark.parametrize(
        "filters",
        [
            {},
            {"since": T0 + timedelta(minutes=3)},
            {"since": T0 + timedelta(minutes=3), "until": T0 + timedelta(minutes=8)},
            {"pocket": "micro", "strategy": "A", "instrument": "USD_JPY"},
        ],
    )
    def test_signal_log(
        self, filled: SqlLedger, reader: SqliteReader, filters: dict[str, Any]
    ) -> None:
        """The signal log, with its JSON scores and the taken flag, read the same."""
        assert reader.signals(**filters) == filled.signals(**filters)

    def test_shadow_signals(self, filled: SqlLedger, reader: SqliteReader) -> None:
        for filters in ({}, {"since": T0 + timedelta(minutes=2)}, {"pocket": "micro"}):
            assert reader.shadow_signals(**filters) == filled.shadow_signals(**filters)  # type: ignore[arg-type]

    def test_the_other_methods_go_to_a_full_ledger(
        self, reader: SqliteReader, make_trade: MakeTrade
    ) -> None:
        """Writes and cursors work (through ``SqlLedger``) and the reader sees the new row."""
        assert reader.upsert_trades([make_trade(broker_trade_id="new", close_at=T0)]).inserted
        reader.set_cursor("c", "v")
        assert reader.get_cursor("c") == "v"
        assert any(t.broker_trade_id == "new" for t in reader.trades())

    def test_it_is_a_ledger_that_filters_pockets(self, reader: SqliteReader) -> None:
        ledger: Ledger = reader  # the seam, structurally (mypy checks this line)
        assert isinstance(ledger, PocketFiltered)


class TestUndecodableRows:
    """A row another writer broke is refused by the reader as by ``SqlLedger``."""

    @pytest.mark.parametrize(
        "corruption",
        [
            "entry_at_us = close_at_us + 1000000",
            "side = 'sideways'",
            "units = 0",
            "entry_price = -1.0",
            "pl_pips = 'abc'",
            "state = 'OPEN'",
            "broker_trade_id = ''",
        ],
    )
    def test_same_ledger_error_naming_the_row(
        self, filled: SqlLedger, reader: SqliteReader, path: Path, corruption: str
    ) -> None:
        with sqlite3.connect(path) as conn:
            conn.execute(f"UPDATE trades SET {corruption} WHERE close_tx_id = '13'")
        with pytest.raises(LedgerError) as sql:
            filled.trades()
        with pytest.raises(LedgerError) as fast:
            reader.trades()
        assert str(fast.value).replace("SqliteReader", "") == str(sql.value)
        assert "close_tx_id='13'" in str(fast.value)
        assert isinstance(fast.value.__cause__, LedgerError)

    def test_values_the_model_accepts_decode_as_before(
        self, filled: SqlLedger, reader: SqliteReader, path: Path
    ) -> None:
        """A row the cheap check does not vouch for (units stored as a float) still decodes
        through the validating path, to what ``SqlLedger`` returns."""
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE trades SET units = 1000.0 + 0.5 WHERE close_tx_id = '13'")
        assert reader.trades() == filled.trades()


class TestTrustedDecode:
    """``trade_from_values`` builds exactly the Trade the validating decoder builds."""

    @settings(max_examples=200, deadline=None)
    @given(
        units=st.integers(min_value=1, max_value=2**63 - 1),
        price=st.floats(min_value=1e-6, max_value=1e6),
        pips=st.floats(allow_nan=False, allow_infinity=False),
        account=st.floats(allow_nan=False, allow_infinity=False),
        entry_us=st.integers(min_value=-(10**15), max_value=10**16),
        hold_us=st.integers(min_value=0, max_value=10**12),
        text=st.text(max_size=8),
        side=st.sampled_from(list(Side)),
        state=st.sampled_from(list(TradeState)),
    )
    def test_equal_to_the_validating_decoder(
        self,
        units: int,
        price: float,
        pips: float,
        account: float,
        entry_us: int,
        hold_us: int,
        text: str,
        side: Side,
        state: TradeState,
    ) -> None:
        row = {
            "broker_trade_id": "b" + text,
            "close_tx_id": text,
            "instrument": "USD_JPY",
            "pocket": text,
            "strategy": text,
            "side": side.value,
            "units": units,
            "entry_price": price,
            "close_price": price * 2,
            "entry_at_us": entry_us,
            "close_at_us": entry_us + hold_us,
            "pl_pips": pips,
            "pl_account": account,
            "broker_close_reason": text,
            "exit_reason": text,
            "regime_macro": "",
            "regime_micro": text,
            "config_version": text,
            "client_order_id": "",
            "state": state.value,
            "source": text,
        }
        fast = trade_from_values(tuple(row[c] for c in TRADE_COLUMNS))
        slow = _trade_from_row(row)
        assert fast == slow
        assert type(fast.side) is Side and type(fast.state) is TradeState
        assert fast.close_at.tzinfo is UTC and fast.entry_at == slow.entry_at

    def test_trusted_is_the_constructor_without_its_checks(self, make_trade: MakeTrade) -> None:
        """``Trade.trusted`` of a trade's field values is that trade; and it checks nothing."""
        trade = make_trade(exit_reason="tp_hit", source="oanda")
        values = tuple(getattr(trade, name) for name in Trade.__dataclass_fields__)
        assert Trade.trusted(values) == trade
        bogus = Trade.trusted((*values[:6], -5, *values[7:]))  # what __post_init__ refuses
        assert bogus.units == -5
        with pytest.raises(ValueError, match="units"):
            Trade(**{**{n: getattr(trade, n) for n in Trade.__dataclass_fields__}, "units": -5})

    def test_infinite_prices_take_the_validating_path(self) -> None:
        row = [("x" if c != "side" else "long") for c in TRADE_COLUMNS]
        values: list[Any] = list(row)
        values[6:13] = [1, math.inf, 1.0, 0, 1, 0.0, 0.0]
        values[19] = "CLOSED"
        with pytest.raises(LedgerError, match="cannot be decoded"):
            trade_from_values(tuple(values))


class TestWhatIsNotReadThisWay:
    """Anything but a ready SQLite file opens as ``SqlLedger`` (which creates or migrates)."""

    def test_a_missing_file_is_created_by_sql_ledger(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'new.db'}"
        assert SqliteReader.try_open(url) is None
        with open_reader(url) as ledger:
            assert isinstance(ledger, SqlLedger)
            assert ledger.count_trades() == 0
        with open_reader(url) as ledger:  # now ready: read the fast way
            assert isinstance(ledger, SqliteReader)

    @pytest.mark.parametrize(
        "url",
        [
            "sqlite://",
            "sqlite:///:memory:",
            "postgresql+psycopg://u:p@127.0.0.1:1/db",
            "sqlite:///{path}?mode=ro",
            "sqlite:///~/x.db",
        ],
    )
    def test_not_a_plain_sqlite_file(self, url: str, filled: SqlLedger, path: Path) -> None:
        assert SqliteReader.try_open(url.format(path=path)) is None

    def test_a_bare_path_is_read(self, filled: SqlLedger, path: Path) -> None:
        reader = SqliteReader.try_open(str(path))
        assert reader is not None and reader.count_trades() == 60
        reader.close()

    @pytest.mark.parametrize("stamp", ["2", "99"])
    def test_another_schema_version_is_left_to_sql_ledger(
        self, filled: SqlLedger, path: Path, stamp: str
    ) -> None:
        """An older ledger is migrated by ``SqlLedger``, a newer one refused by it: never read."""
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (stamp,))
        assert SqliteReader.try_open(f"sqlite:///{path}") is None

    def test_busy_timeout_is_the_engines(self) -> None:
        assert BUSY_TIMEOUT_MS == SQLITE_BUSY_TIMEOUT_MS

    def test_reading_imports_no_sqlalchemy(self, filled: SqlLedger, path: Path) -> None:
        """The point of it: the hot reads of a tune run load neither SQLAlchemy nor numpy."""
        code = (
            "import sys\n"
            "from datetime import datetime, UTC\n"
            "from autolearn.ledger.sqlite_reader import open_reader\n"
            f"with open_reader({f'sqlite:///{path}'!r}) as ledger:\n"
            "    assert len(ledger.trades_in_pockets({'micro'})) == 20\n"
            "    ledger.last_close_at(); ledger.signals(); ledger.shadow_signals()\n"
            "loaded = [m for m in ('sqlalchemy', 'numpy', 'pydantic') if m in sys.modules]\n"
            "assert not loaded, loaded\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr


def test_sql_ledger_filters_pockets_on_both_backends(
    ledger: SqlLedger, make_trade: MakeTrade
) -> None:
    """``SqlLedger.trades_in_pockets`` (``+pocket`` on SQLite, ``pocket IN`` on PostgreSQL) is
    the window's trades filtered in Python, in the same order."""
    ledger.upsert_trades(
        make_trade(
            broker_trade_id=str(i % 4),
            close_tx_id=str(i),
            pocket=_POCKETS[i % 3],
            close_at=T0 + timedelta(minutes=i // 3),
        )
        for i in range(30)
    )
    since, until = T0 + timedelta(minutes=2), T0 + timedelta(minutes=8)
    window = ledger.trades(closed_since=since, closed_until=until)
    for pockets in ({"micro"}, {"micro", "scalp"}, set(_POCKETS), set()):
        expected = [t for t in window if t.pocket in pockets]
        assert ledger.trades_in_pockets(pockets, closed_since=since, closed_until=until) == expected
    assert isinstance(ledger, PocketFiltered)


class TestCommitOrder:
    """The gates' refresh (``read_committed``) on ``sqlite3`` is ``SqlLedger``'s, read for read.

    Compared on the same file after every write of a random sequence of inserts, updates
    (which move a row to a new ``seq``) and other accounts' rows, from every resume point; and
    the ``PRAGMA data_version`` short cut never hides a commit.
    """

    def test_it_is_commit_ordered_for_the_gates(self, reader: SqliteReader) -> None:
        from autolearn.ledger import CommitOrdered

        assert isinstance(reader, CommitOrdered)

    # make_trade is a pure factory (no state between examples); each example has its own file
    @settings(
        max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        ops=st.lists(
            st.tuples(st.integers(0, 12), st.sampled_from(["", "other"]), st.floats(-5, 5)),
            min_size=1,
            max_size=25,
        ),
        since_minutes=st.one_of(st.none(), st.integers(0, 15)),
    )
    def test_same_batches_as_sql_ledger(
        self,
        tmp_path_factory: pytest.TempPathFactory,
        make_trade: MakeTrade,
        ops: list[tuple[int, str, float]],
        since_minutes: int | None,
    ) -> None:
        url = f"sqlite:///{tmp_path_factory.mktemp('commit') / 'ledger.db'}"
        writers = {a: SqlLedger.open(url, account=a) for a in ("", "other")}
        sql = SqlLedger.open(url)
        reader = SqliteReader.try_open(url)
        assert reader is not None
        since = None if since_minutes is None else T0 + timedelta(minutes=since_minutes)
        try:
            for trade_no, account, pips in ops:
                trade = make_trade(
                    broker_trade_id=str(trade_no),
                    close_at=T0 + timedelta(minutes=trade_no),
                    pl_pips=round(pips, 2),
                )
                writers[account].upsert_trades([trade])
                head = sql.commit_head()
                assert reader.commit_head() == head
                for after in range(0, head + 2):
                    expected = sql.read_committed(after=after, closed_since=since)
                    assert reader.read_committed(after=after, closed_since=since) == expected
                    assert reader.read_committed(after=after) == sql.read_committed(after=after)
        finally:
            reader.close()
            sql.close()
            for writer in writers.values():
                writer.close()

    def test_the_data_version_short_cut_never_hides_a_commit(
        self, filled: SqlLedger, reader: SqliteReader, make_trade: MakeTrade
    ) -> None:
        first = reader.read_committed()
        head = first.head
        assert reader.read_committed(after=head).trades == []  # nothing new: no query needed
        assert reader.read_committed(after=head - 3) == filled.read_committed(after=head - 3)
        filled.upsert_trades([make_trade(broker_trade_id="new", close_at=T0 + timedelta(hours=2))])
        batch = reader.read_committed(after=head)
        assert [c.trade.broker_trade_id for c in batch.trades] == ["new"]
        assert batch.head == head + 1 and batch.ledger == first.ledger != ""

    def test_a_closed_reader_reads_the_file_now_at_its_path(
        self, path: Path, reader: SqliteReader, make_trade: MakeTrade
    ) -> None:
        """As ``SqlLedger`` after ``close``: the gates close and reuse theirs when a ledger is
        rebuilt, and must then see the new file (its other ledger id), not the old snapshot."""
        before = reader.read_committed()
        reader.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        with SqlLedger.open(f"sqlite:///{path}") as rebuilt:
            rebuilt.upsert_trades([make_trade(broker_trade_id="only")])
        after = reader.read_committed()
        assert [c.trade.broker_trade_id for c in after.trades] == ["only"]
        assert after.ledger != before.ledger

    def test_is_replaced_when_the_file_is(
        self, path: Path, reader: SqliteReader, make_trade: MakeTrade
    ) -> None:
        assert not reader.is_replaced()
        path.rename(path.with_suffix(".old"))
        with SqlLedger.open(f"sqlite:///{path}") as rebuilt:  # a new inode: the old one is open
            rebuilt.upsert_trades([make_trade(broker_trade_id="x")])
        assert reader.is_replaced()

    def test_a_gates_refresh_uses_sqlite3(self, filled: SqlLedger, path: Path) -> None:
        """``Gates.open`` on a ready SQLite ledger reads through this reader (issue 16)."""
        from autolearn.gates import Gates
        from autolearn.settings import load_registry

        gates = Gates.open(f"sqlite:///{path}", path.parent / "state", load_registry(None))
        try:
            assert isinstance(gates._ledger, SqliteReader)
            assert gates.refresh(T0 + timedelta(hours=1)) == 60  # the history window, once
            assert gates.refresh(T0 + timedelta(hours=1)) == 0
        finally:
            gates.close()


def test_gates_on_the_reader_serve_every_thread(
    filled: SqlLedger, path: Path, make_trade: MakeTrade
) -> None:
    """A bot's threads share one ``Gates``: opened and refreshed in one thread, checked in
    another, closed in a third; every read answers (``sqlite3`` objects are bound to their
    thread unless told otherwise, and the gates would then deny every entry)."""
    import threading

    from autolearn.core.model import Side
    from autolearn.gates import Gates
    from autolearn.settings import load_registry

    now = T0 + timedelta(hours=1)
    gates = Gates.open(f"sqlite:///{path}", path.parent / "state", load_registry(None))
    assert gates.refresh(now) == 60
    outcome: list[object] = []

    def other() -> None:
        filled.upsert_trades(
            [make_trade(broker_trade_id="late", close_at=T0 + timedelta(minutes=55))]
        )
        outcome.append(gates.refresh(now))
        outcome.append(gates.check_entry("A", "micro", Side.LONG, 150.0, now).codes)
        outcome.append(gates.ledger_error)

    worker = threading.Thread(target=other)
    worker.start()
    worker.join()
    assert outcome[0] == 1 and outcome[2] is None, outcome
    assert "ledger_unreadable" not in outcome[1]  # type: ignore[operator]
    failures: list[BaseException] = []

    def close() -> None:
        try:
            gates.close()
        except BaseException as exc:  # reported below, in this thread
            failures.append(exc)

    closer = threading.Thread(target=close)
    closer.start()
    closer.join()
    assert failures == []
