"""The account (bot) key (issue 19 item 2): two bots on one ledger with colliding broker ids.

OANDA's trade and transaction ids are per account. Before schema v4 a second bot's trades
overwrote the first's (20 + 20 trades with 10 shared ids: 30 rows, ``inserted 10, updated 10``)
and bot A's gates read bot B's trades. Done when: 0 overwritten, 0 cross-read, on both backends.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autolearn import testing
from autolearn.cli import main
from autolearn.core.model import EntrySignal, Side, Trade
from autolearn.errors import ConfigError, LedgerError
from autolearn.gates import Gates
from autolearn.gates.config import load_gates_config
from autolearn.ledger import SqlLedger, TradeWriter
from autolearn.ledger import _schema as schema
from autolearn.ledger.spool import spool_path
from autolearn.ledger.sqlite_reader import SqliteReader, open_reader
from autolearn.settings import Settings
from tests.gitbot import make_git_bot
from tests.ledger.test_migrations import _alembic_to, _write_v2

T0 = datetime(2025, 10, 20, 0, 0, tzinfo=UTC)
QR_CSV = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "quantrabbit"
    / "trades_latest.part-0001-0300.csv"
)


def trade_a(i: int, **over: Any) -> Trade:
    """Bot A's trade ``4391 + i``: a USD_JPY winner (JPY P/L), closed ``i`` minutes after T0."""
    fields: dict[str, Any] = {
        "broker_trade_id": str(4391 + i),
        "close_tx_id": str(9391 + i),
        "entry_price": 150.0,
        "close_price": 150.05,
    }
    fields.update(over)
    return testing.make_trade(close_at=T0 + timedelta(minutes=i), pl_pips=5.0, **fields)


def trade_b(i: int, **over: Any) -> Trade:
    """Bot B's trade ``4401 + i``: a EUR_USD loser (USD P/L). ``i`` < 10 shares A's ids
    4401..4410 (with A's close transaction ids), as two OANDA accounts' ids do."""
    fields: dict[str, Any] = {
        "broker_trade_id": str(4401 + i),
        "close_tx_id": str(9401 + i),
        "instrument": "EUR_USD",
        "entry_price": 1.0850,
        "close_price": 1.0842,
        "pl_account": -0.8,
        "pocket": "micro",
        "strategy": "MomentumPulse",
    }
    fields.update(over)
    return testing.make_trade(
        close_at=T0 + timedelta(minutes=i, seconds=30), pl_pips=-8.0, **fields
    )


A_TRADES = [trade_a(i) for i in range(20)]
B_TRADES = [trade_b(i) for i in range(20)]
SHARED = {(t.broker_trade_id, t.close_tx_id) for t in A_TRADES} & {
    (t.broker_trade_id, t.close_tx_id) for t in B_TRADES
}


def _key(t: Trade) -> tuple[str, str]:
    return (t.broker_trade_id, t.close_tx_id)


def _by_key(trades: list[Trade]) -> dict[tuple[str, str], Trade]:
    return {_key(t): t for t in trades}


def _rows(url: str, table: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        out = [dict(r._mapping) for r in conn.execute(sa.select(schema.metadata.tables[table]))]
    engine.dispose()
    return out


@pytest.fixture(name="two_bots")
def fixture_two_bots(ledger_url: str) -> Iterator[tuple[SqlLedger, SqlLedger]]:
    """Bot A's and bot B's handles on one (empty) ledger."""
    a = SqlLedger.open(ledger_url, account="A")
    b = SqlLedger.open(ledger_url, account="B")
    yield a, b
    a.close()
    b.close()


class TestTheIssueScenario:
    def test_colliding_ids_neither_overwrite_nor_cross_read(
        self, ledger_url: str, two_bots: tuple[SqlLedger, SqlLedger]
    ) -> None:
        """20 + 20 trades with 10 shared keys: inserted 20 and 20 (none updated), 40 rows; A
        reads exactly its 20 with its values (its 4401 is still its USD_JPY winner), B its 20."""
        a, b = two_bots
        assert len(SHARED) == 10
        counts_a = a.upsert_trades(A_TRADES)
        counts_b = b.upsert_trades(B_TRADES)
        assert (counts_a.inserted, counts_a.updated, counts_a.unchanged) == (20, 0, 0)
        assert (counts_b.inserted, counts_b.updated, counts_b.unchanged) == (20, 0, 0)
        assert len(_rows(ledger_url, "trades")) == 40
        assert a.trades() == A_TRADES
        assert b.trades() == B_TRADES
        assert a.trades(instrument="EUR_USD") == []
        shared_a = _by_key(a.trades())[("4401", "9401")]
        assert (shared_a.instrument, shared_a.pl_pips) == ("USD_JPY", 5.0)
        stored = {(r["account"], r["broker_trade_id"]) for r in _rows(ledger_url, "trades")}
        assert {("A", t.broker_trade_id) for t in A_TRADES} | {
            ("B", t.broker_trade_id) for t in B_TRADES
        } == stored

    def test_redelivery_updates_only_the_writers_own_row(
        self, two_bots: tuple[SqlLedger, SqlLedger]
    ) -> None:
        """Re-sending B's trades is unchanged; B correcting its 4401 updates B's row, not A's."""
        a, b = two_bots
        a.upsert_trades(A_TRADES)
        b.upsert_trades(B_TRADES)
        again = b.upsert_trades(B_TRADES)
        assert (again.inserted, again.updated, again.unchanged) == (0, 0, 20)
        corrected = trade_b(0, pl_account=-1.5)
        fixed = b.upsert_trades([corrected])
        assert (fixed.inserted, fixed.updated) == (0, 1)
        assert _by_key(b.trades())[("4401", "9401")].pl_account == -1.5
        assert a.trades() == A_TRADES

    def test_counts_last_close_and_summary_per_account(
        self, ledger_url: str, two_bots: tuple[SqlLedger, SqlLedger]
    ) -> None:
        """count_trades, last_close_at and summary() (pl_account in each bot's currency) are
        per account; the default account '' sees neither bot."""
        a, b = two_bots
        a.upsert_trades(A_TRADES)
        b.upsert_trades(B_TRADES)
        assert (a.count_trades(), b.count_trades()) == (20, 20)
        assert a.last_close_at() == A_TRADES[-1].close_at
        assert b.last_close_at() == B_TRADES[-1].close_at
        sa_, sb = a.summary(), b.summary()
        assert sa_.trades == 20 and sb.trades == 20
        assert sa_.total_pl_account == pytest.approx(sum(t.pl_account for t in A_TRADES))
        assert sb.total_pl_account == pytest.approx(-0.8 * 20)
        assert sa_.total_pl_pips == pytest.approx(100.0)
        assert sb.total_pl_pips == pytest.approx(-160.0)
        assert (sa_.first_close_at, sa_.last_close_at) == (T0, A_TRADES[-1].close_at)
        with SqlLedger.open(ledger_url) as default:
            assert default.account == ""
            assert default.trades() == []
            assert default.count_trades() == 0
            assert default.last_close_at() is None
            assert default.summary().trades == 0
            assert default.summary().total_pl_account == 0.0

    def test_trades_after_and_windows_filter_by_account(
        self, two_bots: tuple[SqlLedger, SqlLedger]
    ) -> None:
        """The incremental and windowed reads and trades_in_pockets see the handle's rows."""
        a, b = two_bots
        a.upsert_trades(A_TRADES)
        b.upsert_trades(B_TRADES)
        assert a.trades_after(None) == A_TRADES
        assert b.trades_after(None, limit=5) == B_TRADES[:5]
        since = T0 + timedelta(minutes=15)
        assert a.trades(closed_since=since) == [t for t in A_TRADES if t.close_at >= since]
        assert b.trades_in_pockets({"micro"}) == B_TRADES
        assert a.trades_in_pockets({"micro"}, closed_since=since) == A_TRADES[15:]


class TestSignalsAndCursors:
    def _signal(self, signal_id: str, **over: Any) -> EntrySignal:
        fields: dict[str, Any] = {
            "signal_id": signal_id,
            "at": T0,
            "instrument": "USD_JPY",
            "pocket": "micro",
            "strategy": "MomentumPulse",
            "side": Side.LONG,
            "price": 150.0,
            "taken": False,
            "not_taken": "threshold",
        }
        fields.update(over)
        return EntrySignal(**fields)

    def test_signals_with_one_id_are_two_bots_rows(
        self, two_bots: tuple[SqlLedger, SqlLedger]
    ) -> None:
        a, b = two_bots
        sig_a = self._signal("s1", not_taken="threshold")
        sig_b = self._signal("s1", instrument="EUR_USD", price=1.085, not_taken="policy_block")
        assert a.upsert_signals([sig_a]).inserted == 1
        assert b.upsert_signals([sig_b]).inserted == 1
        assert a.signals() == [sig_a]
        assert b.signals() == [sig_b]
        assert b.signals(instrument="USD_JPY") == []

    def test_shadow_signals_and_their_log_copy_are_per_account(
        self, ledger_url: str, two_bots: tuple[SqlLedger, SqlLedger]
    ) -> None:
        """A shadow with an id B also uses goes into A's shadows and A's signal log only; B's
        recorded signal with that id is not shadowed by A's copy, and B's shadow goes to B's."""
        a, b = two_bots
        shadow_a = testing.make_signal(at=T0, outcome_pips=2.0, signal_id="x1", reason="r_a")
        rich_b = self._signal("x1", not_taken="policy_block", scores={"confidence": 0.7})
        b.upsert_signals([rich_b])
        assert a.upsert_shadow_signals([shadow_a]).inserted == 1
        assert a.shadow_signals() == [shadow_a]
        assert b.shadow_signals() == []
        assert [s.signal_id for s in a.signals()] == ["x1"]
        assert a.signals()[0].not_taken == "r_a"  # A's copy of its own shadow
        assert b.signals() == [rich_b]  # untouched by A's shadow
        shadow_b = testing.make_signal(at=T0, outcome_pips=None, signal_id="x1")
        assert b.upsert_shadow_signals([shadow_b]).inserted == 1
        assert b.shadow_signals() == [shadow_b]
        assert b.signals() == [rich_b]  # B's log already had x1: insert-if-new
        assert a.shadow_signals() == [shadow_a]
        assert a.summary().shadow_signals == 1
        assert {(r["account"], r["signal_id"]) for r in _rows(ledger_url, "signals")} == {
            ("A", "x1"),
            ("B", "x1"),
        }

    def test_cursors_are_per_account(
        self, ledger_url: str, two_bots: tuple[SqlLedger, SqlLedger]
    ) -> None:
        a, b = two_bots
        a.set_cursor("oanda:transactions", "100")
        assert b.get_cursor("oanda:transactions") is None
        b.set_cursor("oanda:transactions", "7")
        a.set_cursor("oanda:transactions", "101")
        assert a.get_cursor("oanda:transactions") == "101"
        assert b.get_cursor("oanda:transactions") == "7"
        with SqlLedger.open(ledger_url) as default:
            assert default.get_cursor("oanda:transactions") is None


class TestCommitOrderedReads:
    def test_read_committed_sees_only_the_accounts_trades(
        self, two_bots: tuple[SqlLedger, SqlLedger]
    ) -> None:
        """Interleaved writes: each account's commit-order read holds its trades in commit
        order; resuming after its own highest seq with B writing in between finds nothing."""
        a, b = two_bots
        for ta, tb in zip(A_TRADES, B_TRADES, strict=True):
            a.upsert_trades([ta])
            b.upsert_trades([tb])
        batch = a.read_committed()
        assert [c.trade for c in batch.trades] == A_TRADES
        assert batch.head == 40  # the head is the ledger's (the seq is global)
        seqs = [c.seq for c in batch.trades]
        assert seqs == sorted(seqs) and len(set(seqs)) == 20
        assert [c.trade for c in b.trades_committed()] == B_TRADES
        last = seqs[-1]
        b.upsert_trades([trade_b(30)])
        assert a.read_committed(after=last).trades == []
        assert [c.trade.broker_trade_id for c in b.trades_committed(after=last)] == [
            B_TRADES[-1].broker_trade_id,
            "4431",
        ]
        assert [c.trade for c in a.trades_committed(upto=seqs[4])] == A_TRADES[:5]

    def test_a_bots_gates_count_its_trades_and_ignore_the_others_losses(
        self, ledger_url: str, tmp_path: Path, two_bots: tuple[SqlLedger, SqlLedger]
    ) -> None:
        """A's gates over a ledger where A (20 winners) and B (20 losers, 10 colliding ids)
        write interleaved count A's 20 only and let A in; B's gates, on B's losses, block it
        (the perf guard: PF 0 over 20 trades). Before v4 B's losses blocked A's pocket."""
        from autolearn.settings import load_registry

        a, b = two_bots
        now = T0 + timedelta(hours=5)  # past every cooldown and the 4 h re-entry distance age
        gates_a = Gates.open(
            ledger_url,
            tmp_path / "state-a",
            load_registry(None),
            clock=lambda: 0.0,
            refresh_s=0.0,
            account="A",
        )
        gates_b = Gates(ledger=SqlLedger.open(ledger_url, account="B"), config=load_gates_config())
        try:
            for i, (ta, tb) in enumerate(zip(A_TRADES, B_TRADES, strict=True)):
                a.upsert_trades([ta])
                b.upsert_trades([tb])
                if i % 5 == 4:  # refreshes in between the writes
                    gates_a.check_entry("MomentumPulse", "micro", Side.LONG, 150.0, now)
            va = gates_a.check_entry(
                "MomentumPulse", "micro", Side.LONG, 150.0, now, instrument="USD_JPY"
            )
            vb = gates_b.check_entry(
                "MomentumPulse", "micro", Side.LONG, 1.0850, now, instrument="EUR_USD"
            )
            assert gates_a.ledger_error is None and gates_b.ledger_error is None
            assert gates_a.aggregates.trades_seen == 20
            assert gates_b.aggregates.trades_seen == 20
            window = gates_a.aggregates.window("micro", "MomentumPulse", timedelta(days=3), now)
            assert (window.stats.n, window.stats.losses) == (20, 0)
            assert va.allowed, va.reasons
            assert not vb.allowed
            assert {"perf_low", "failfast"} & set(vb.blocking_codes), vb.reasons
        finally:
            gates_a.close()
            gates_b.close()


class TestSqliteReader:
    def test_the_fast_reader_filters_as_the_ledger_does(self, tmp_path: Path) -> None:
        """open_reader on a ready SQLite file is a SqliteReader; for every account (and '')
        each read equals SqlLedger's."""
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        with SqlLedger.open(url, account="A") as a, SqlLedger.open(url, account="B") as b:
            a.upsert_trades(A_TRADES)
            b.upsert_trades(B_TRADES)
            a.upsert_shadow_signals([testing.make_signal(at=T0, outcome_pips=1.0, signal_id="z")])
            b.upsert_shadow_signals([testing.make_signal(at=T0, outcome_pips=-1.0, signal_id="z")])
        since = T0 + timedelta(minutes=7)
        for account in ("A", "B", ""):
            reader = open_reader(url, account=account)
            with reader, SqlLedger.open(url, account=account) as full:
                assert isinstance(reader, SqliteReader)
                assert reader.account == account
                assert reader.trades() == full.trades()
                assert reader.trades(closed_since=since, pocket="micro") == full.trades(
                    closed_since=since, pocket="micro"
                )
                assert reader.trades_in_pockets({"micro", "macro"}) == full.trades_in_pockets(
                    {"micro", "macro"}
                )
                assert reader.last_close_at() == full.last_close_at()
                assert reader.count_trades() == full.count_trades()
                assert reader.signals() == full.signals()
                assert reader.shadow_signals() == full.shadow_signals()
                assert reader.trades_after(None) == full.trades_after(None)
        with open_reader(url, account="A") as reader:
            assert reader.trades() == A_TRADES and reader.count_trades() == 20
            assert [s.outcome_pips for s in reader.shadow_signals()] == [1.0]
        with open_reader(url) as reader:
            assert reader.trades() == [] and reader.last_close_at() is None

    def test_writes_through_the_reader_are_stamped_with_its_account(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        SqlLedger.open(url).close()
        with open_reader(url, account="B") as reader:
            assert isinstance(reader, SqliteReader)
            assert reader.upsert_trades(B_TRADES[:3]).inserted == 3
            reader.set_cursor("c", "1")
            assert reader.get_cursor("c") == "1"
        with SqlLedger.open(url, account="B") as b, SqlLedger.open(url) as default:
            assert b.trades() == B_TRADES[:3]
            assert b.get_cursor("c") == "1"
            assert default.count_trades() == 0 and default.get_cursor("c") is None


def _write_v3(url: str) -> None:
    """A v3 ledger (stamped, as autolearn 3 left it) holding the v1 dump's 315 trades."""
    _write_v2(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _alembic_to(conn, "v3")
        conn.exec_driver_sql("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    engine.dispose()


def _raw(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        out = [tuple(r) for r in conn.exec_driver_sql(sql)]
    engine.dispose()
    return out


class TestMigrationToV4:
    def test_v3_rows_become_the_default_accounts_with_their_seq(self, ledger_url: str) -> None:
        """Every v3 row (trades, shadows, signal log, cursors) is under account '' after the
        upgrade, ``seq`` values unchanged; another account sees none of them."""
        _write_v3(ledger_url)
        assert _raw(ledger_url, "SELECT version_num FROM alembic_version") == [("v3",)]
        before = _raw(
            ledger_url, "SELECT broker_trade_id, close_tx_id, seq FROM trades ORDER BY seq"
        )
        counts = {
            t: _raw(ledger_url, f"SELECT count(*) FROM {t}")[0][0]
            for t in ("trades", "shadow_signals", "signals", "cursors")
        }
        assert counts["trades"] == 315 and min(counts.values()) > 0
        with SqlLedger.open(ledger_url) as default:
            assert default.count_trades() == 315
            assert default.commit_head() == 315
        assert _raw(ledger_url, "SELECT version_num FROM alembic_version") == [("v5",)]
        after = _raw(
            ledger_url, "SELECT broker_trade_id, close_tx_id, seq FROM trades ORDER BY seq"
        )
        assert after == before
        for table, n in counts.items():
            accounts = _raw(
                ledger_url,
                f"SELECT account, count(*) FROM {table} GROUP BY account",
            )
            assert accounts == [("", n)], table
        with SqlLedger.open(ledger_url, account="B") as b:
            assert b.count_trades() == 0 and b.shadow_signals() == [] and b.signals() == []

    def test_a_new_accounts_colliding_id_inserts_next_to_the_old_row(self, ledger_url: str) -> None:
        """After the upgrade, bot B writing the id of an old row inserts its own row (no
        overwrite), numbered after the head; the old row keeps its values and its seq."""
        _write_v3(ledger_url)
        with SqlLedger.open(ledger_url) as default:
            old = default.trades()[0]
            old_seq = next(c.seq for c in default.trades_committed() if _key(c.trade) == _key(old))
        theirs = testing.make_trade(
            close_at=T0,
            pl_pips=-3.0,
            broker_trade_id=old.broker_trade_id,
            close_tx_id=old.close_tx_id,
            instrument="EUR_USD",
            entry_price=1.085,
            close_price=1.0847,
        )
        with SqlLedger.open(ledger_url, account="B") as b:
            counts = b.upsert_trades([theirs])
            assert (counts.inserted, counts.updated) == (1, 0)
            assert [(c.seq, c.trade) for c in b.trades_committed()] == [(316, theirs)]
        with SqlLedger.open(ledger_url) as default:
            assert default.count_trades() == 315
            assert default.trades()[0] == old
            assert [c.seq for c in default.trades_committed() if _key(c.trade) == _key(old)] == [
                old_seq
            ]


class TestAccountKeys:
    @pytest.mark.parametrize("bad", ["a b", "x" * 65, "../x", "a'b", "é"])
    def test_bad_keys_are_refused_naming_the_problem(self, tmp_path: Path, bad: str) -> None:
        url = f"sqlite:///{tmp_path / 'l.db'}"
        for opener in (
            lambda: SqlLedger.open(url, account=bad),
            lambda: open_reader(url, account=bad),
            lambda: TradeWriter.open(url, account=bad),
        ):
            with pytest.raises(LedgerError, match="account key is 0 to 64 letters"):
                opener()
        assert not (tmp_path / "l.db").exists()  # refused before anything is created

    def test_valid_keys(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'l.db'}"
        for good in ("", "101-004-1234567-001", "bot_A.v2", "x" * 64):
            with SqlLedger.open(url, account=good) as ledger:
                assert ledger.account == good

    def test_a_non_text_key_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(LedgerError, match="account key is text"):
            SqlLedger.open(f"sqlite:///{tmp_path / 'l.db'}", account=7)  # type: ignore[arg-type]


@pytest.fixture(name="bot")
def fixture_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bot checkout in git (registry tracked, logs/ ignored); no setting in the process env."""
    bot = make_git_bot(tmp_path, monkeypatch)
    monkeypatch.setenv("AUTOLEARN_ENV_FILE", str(tmp_path / "autolearn.env"))
    (tmp_path / "autolearn.env").write_text("")
    return bot


class TestSettings:
    def test_from_the_environment_and_the_env_file(
        self, bot: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """AUTOLEARN_ACCOUNT: unset is ''; the env file names it; the process env wins."""
        assert Settings.from_environment().account == ""
        (tmp_path / "autolearn.env").write_text("AUTOLEARN_ACCOUNT=101-004-1234567-001\n")
        assert Settings.from_environment().account == "101-004-1234567-001"
        monkeypatch.setenv("AUTOLEARN_ACCOUNT", "botB")
        assert Settings.from_environment().account == "botB"

    @pytest.mark.parametrize("bad", ["a b", "x" * 65, "../x"])
    def test_a_bad_key_is_a_config_error_naming_the_variable(
        self, bot: Path, monkeypatch: pytest.MonkeyPatch, bad: str
    ) -> None:
        monkeypatch.setenv("AUTOLEARN_ACCOUNT", bad)
        with pytest.raises(ConfigError, match=r"AUTOLEARN_ACCOUNT=.*account key is 0 to 64"):
            _ = Settings.from_environment().account

    def test_a_bad_key_in_the_env_file_is_a_config_error(self, bot: Path, tmp_path: Path) -> None:
        (tmp_path / "autolearn.env").write_text("AUTOLEARN_ACCOUNT=../x\n")
        with pytest.raises(ConfigError, match="AUTOLEARN_ACCOUNT="):
            _ = Settings.from_environment().account


class TestCli:
    def test_ingest_as_b_is_invisible_to_a(
        self,
        bot: Path,
        ledger_url: str,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """With AUTOLEARN_ACCOUNT=B ``ingest`` stores the export's trades under B; ``status``
        as A reports an empty ledger, as B the rows; a bad key exits 78 before ingesting."""
        monkeypatch.setenv("AUTOLEARN_LEDGER_URL", ledger_url)
        monkeypatch.setenv("AUTOLEARN_ACCOUNT", "B")
        assert main(["ingest", str(QR_CSV)]) == 0
        inserted = re.search(r"ledger: (\d+) inserted", capsys.readouterr().out)
        assert inserted is not None
        with SqlLedger.open(ledger_url, account="B") as b:
            stored = b.count_trades()
        assert stored == int(inserted.group(1)) > 0
        for account in ("A", ""):
            with SqlLedger.open(ledger_url, account=account) as other:
                assert other.count_trades() == 0
        monkeypatch.setenv("AUTOLEARN_ACCOUNT", "A")
        main(["status", "--json"])
        ledger_a = json.loads(capsys.readouterr().out)["ledger"]
        assert (ledger_a["trades"], ledger_a["last_close_at"]) == (0, None)
        monkeypatch.setenv("AUTOLEARN_ACCOUNT", "B")
        main(["status", "--json"])
        assert json.loads(capsys.readouterr().out)["ledger"]["trades"] == stored
        monkeypatch.setenv("AUTOLEARN_ACCOUNT", "a b")
        assert main(["ingest", str(QR_CSV)]) == 78
        with SqlLedger.open(ledger_url, account="B") as b:
            assert b.count_trades() == stored


class TestSpool:
    def test_two_accounts_writers_spool_to_different_files(self, tmp_path: Path) -> None:
        """One spool dir, one ledger, two accounts: two spool files ('' keeps its old name);
        a trade spooled by B during an outage is flushed under B, never under A."""
        url = f"sqlite:///{tmp_path / 'l.db'}"
        spool_dir = tmp_path / "spool"
        names = {spool_path(spool_dir, url, acc) for acc in ("", "A", "B")}
        assert len(names) == 3
        assert spool_path(spool_dir, url) == spool_path(spool_dir, url, "")
        wa = TradeWriter.open(url, account="A", spool_dir=spool_dir)
        wb = TradeWriter.open(url, account="B", spool_dir=spool_dir)
        try:
            assert wa.spool is not None and wb.spool is not None
            assert wa.spool.path != wb.spool.path
            assert wa.spool.path == spool_path(spool_dir, wa.ledger.url, "A")
        finally:
            wa.close()
            wb.close()


_ids = st.sampled_from([("1", "10"), ("1", "11"), ("2", "20"), ("3", "30")])


class TestProperty:
    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        ops=st.lists(
            st.tuples(st.sampled_from("AB"), _ids, st.integers(-20, 20)), min_size=1, max_size=12
        )
    )
    def test_each_account_reads_its_own_last_versions(
        self, two_bots: tuple[SqlLedger, SqlLedger], ops: list[tuple[str, tuple[str, str], int]]
    ) -> None:
        """Random interleavings of A/B upserts over 4 shared keys: each account's read is the
        last version that account wrote of each key, whatever the other wrote since."""
        handles = dict(zip("AB", two_bots, strict=True))
        run = uuid.uuid4().hex[:8]  # the ledger outlives an example: keys are per example
        expected: dict[str, dict[tuple[str, str], Trade]] = {"A": {}, "B": {}}
        for account, (trade_id, tx_id), pips in ops:
            t = testing.make_trade(
                close_at=T0 + timedelta(minutes=int(tx_id)),
                pl_pips=float(pips),
                broker_trade_id=f"{run}-{trade_id}",
                close_tx_id=f"{run}-{tx_id}",
            )
            handles[account].upsert_trades([t])
            expected[account][_key(t)] = t
        for account, ledger in handles.items():
            mine = {_key(t): t for t in ledger.trades() if t.broker_trade_id.startswith(run)}
            assert mine == expected[account]
