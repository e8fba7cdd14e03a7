"""Contract suite of the Ledger seam, run on SQLite and PostgreSQL (``ledger`` fixture)."""

from __future__ import annotations

import dataclasses
import itertools
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autolearn.core.model import ShadowSignal, Side, Trade, TradeState
from autolearn.core.plausibility import TradeLimits
from autolearn.errors import LedgerError
from autolearn.ledger import SCHEMA_VERSION, Ledger, SqlLedger, TradeWriter, UpsertCounts

T0 = datetime(2025, 10, 22, 8, 0, tzinfo=UTC)
MakeTrade = Callable[..., Trade]


def ledger_order(trades: list[Trade]) -> list[Trade]:
    """The documented read order, computed in Python (code point order of the ids)."""
    return sorted(trades, key=lambda t: (t.close_at, t.broker_trade_id, t.close_tx_id))


class TestProtocol:
    def test_sql_ledger_satisfies_the_ledger_protocol(self, ledger: SqlLedger) -> None:
        """SqlLedger can stand wherever the Ledger seam is expected."""
        seam: Ledger = ledger
        assert seam.count_trades() == 0
        assert seam.last_close_at() is None


class TestCommitOrder:
    def test_seq_follows_commits_not_close_times(
        self, ledger: SqlLedger, make_trade: MakeTrade
    ) -> None:
        """Each write takes the next ``seq`` whatever its close time; an unchanged re-delivery
        keeps its place, a changed one moves to the head; the filters combine."""
        from autolearn.ledger import CommitOrdered

        assert isinstance(ledger, CommitOrdered)
        assert ledger.commit_head() == 0
        late = make_trade(broker_trade_id="late", close_at=T0)
        new = make_trade(broker_trade_id="new", close_at=T0 + timedelta(hours=5))
        ledger.upsert_trades([new])
        ledger.upsert_trades([late])  # committed after, closes before
        ledger.upsert_trades([new])  # unchanged
        assert [(c.seq, c.trade.broker_trade_id) for c in ledger.trades_committed()] == [
            (1, "new"),
            (2, "late"),
        ]
        ledger.upsert_trades([make_trade(broker_trade_id="new", close_at=new.close_at, pl_pips=-1)])
        assert ledger.commit_head() == 3
        assert [c.trade.broker_trade_id for c in ledger.trades_committed(after=1)] == [
            "late",
            "new",
        ]
        assert [c.seq for c in ledger.trades_committed(upto=2)] == [2]
        since = T0 + timedelta(hours=1)
        assert [c.seq for c in ledger.trades_committed(closed_since=since)] == [3]


class TestUpsert:
    def test_same_trades_twice_are_stored_once(
        self, ledger: SqlLedger, make_trade: MakeTrade
    ) -> None:
        """Re-delivering a batch inserts nothing and counts every row as unchanged."""
        trades = [make_trade(broker_trade_id=str(i)) for i in range(5)]
        assert ledger.upsert_trades(trades) == UpsertCounts(inserted=5)
        assert ledger.upsert_trades(trades) == UpsertCounts(unchanged=5)
        assert ledger.count_trades() == 5

    def test_changed_field_is_counted_as_updated_and_stored(
        self, ledger: SqlLedger, make_trade: MakeTrade
    ) -> None:
        """A re-delivery with a different field updates the stored row, others stay unchanged."""
        a, b = make_trade(broker_trade_id="a"), make_trade(broker_trade_id="b")
        ledger.upsert_trades([a, b])
        changed = dataclasses.replace(b, exit_reason="hazard_exit", pl_account=-5.0)
        assert ledger.upsert_trades([a, changed]) == UpsertCounts(updated=1, unchanged=1)
        assert ledger.trades() == [a, changed]

    def test_partial_and_final_close_of_one_ticket_are_two_rows(
        self, ledger: SqlLedger, make_trade: MakeTrade
    ) -> None:
        """(broker_trade_id, close_tx_id) is the key: two fills of one ticket are two rows."""
        partial = make_trade(close_tx_id="11", state=TradeState.PARTIAL, units=400)
        final = make_trade(close_tx_id="12", units=600, close_at=T0 + timedelta(hours=2))
        assert ledger.upsert_trades([partial, final]) == UpsertCounts(inserted=2)
        assert ledger.trades() == [partial, final]

    def test_key_repeated_inside_one_batch_counts_like_separate_calls(
        self, ledger: SqlLedger, make_trade: MakeTrade
    ) -> None:
        """Within one batch: first copy inserted, identical copy unchanged, changed copy wins."""
        first = make_trade()
        changed = dataclasses.replace(first, pl_pips=-3.0)
        counts = ledger.upsert_trades([first, first, changed])
        assert counts == UpsertCounts(inserted=1, updated=1, unchanged=1)
        assert ledger.trades() == [changed]

    def test_generator_input_larger_than_one_chunk(
        self, ledger: SqlLedger, make_trade: MakeTrade
    ) -> None:
        """An iterator of several thousand trades (more than one internal chunk) is all stored."""
        n = 4_500
        counts = ledger.upsert_trades(make_trade(broker_trade_id=f"t{i}") for i in range(n))
        assert counts == UpsertCounts(inserted=n)
        assert ledger.count_trades() == n

    def test_text_with_nul_is_refused_on_every_backend(
        self, ledger: SqlLedger, make_trade: MakeTrade
    ) -> None:
        """A NUL character (PostgreSQL cannot store it) is refused the same way everywhere."""
        with pytest.raises(LedgerError, match="NUL"):
            ledger.upsert_trades([make_trade(strategy="bad\x00tag")])
        assert ledger.count_trades() == 0


class TestReads:
    def test_reads_follow_close_time_then_ids_in_code_point_order(
        self, ledger: SqlLedger, make_trade: MakeTrade
    ) -> None:
        """Equal close times are ordered by ids in code point order on both backends."""
        ids = ["a", "B", "Z", "é", "z", "10", "9", "マ"]
        trades = [make_trade(broker_trade_id=i) for i in ids]
        trades += [make_trade(broker_trade_id="a", close_tx_id="9")]
        trades += [make_trade(broker_trade_id="x", close_at=T0)]
        shuffled = trades[:]
        random.Random(7).shuffle(shuffled)
        ledger.upsert_trades(shuffled)
        assert ledger.trades() == ledger_order(trades)

    def test_window_includes_since_and_excludes_until_exactly(
        self, ledger: SqlLedger, make_trade: MakeTrade
    ) -> None:
        """closed_since <= close_at < closed_until, at microsecond resolution."""
        since, until = T0, T0 + timedelta(hours=1)
        us = timedelta(microseconds=1)
        at = {
            "before_since": since - us,
            "at_since": since,
            "before_until": until - us,
            "at_until": until,
        }
        ledger.upsert_trades(make_trade(broker_trade_id=k, close_at=v) for k, v in at.items())
        got = ledger.trades(closed_since=since, closed_until=until)
        assert [t.broker_trade_id for t in got] == ["at_since", "before_until"]

    def test_window_bounds_in_another_offset_mean_the_same_instant(
        self, ledger: SqlLedger, make_trade: MakeTrade
    ) -> None:
        """A JST bound selects by instant, not by wall-clock text (the original's bug)."""
        jst = timezone(timedelta(hours=9))
        ledger.upsert_trades([make_trade(close_at=T0)])
        assert len(ledger.trades(closed_since=T0.astimezone(jst))) == 1
        assert ledger.trades(closed_until=T0.astimezone(jst)) == []

    def test_filters_combine(self, ledger: SqlLedger, make_trade: MakeTrade) -> None:
        """pocket, strategy and instrument filters are all applied together."""
        combos = list(itertools.product(["macro", "scalp"], ["A", "B"], ["USD_JPY", "EUR_USD"]))
        trades = [
            make_trade(broker_trade_id=f"{p}{s}{i}", pocket=p, strategy=s, instrument=i)
            for p, s, i in combos
        ]
        ledger.upsert_trades(trades)
        got = ledger.trades(pocket="scalp", strategy="B", instrument="EUR_USD")
        assert [t.broker_trade_id for t in got] == ["scalpBEUR_USD"]
        assert len(ledger.trades(pocket="macro")) == 4

    def test_trades_after_resumes_inside_a_group_of_equal_close_times(
        self, ledger: SqlLedger, make_trade: MakeTrade
    ) -> None:
        """A watermark in the middle of equal close times returns exactly the rest."""
        same = [make_trade(broker_trade_id=i, close_tx_id=tx) for i in "abc" for tx in "12"]
        later = make_trade(broker_trade_id="0", close_at=T0 + timedelta(hours=5))
        ledger.upsert_trades([later, *same])
        ordered = ledger_order([later, *same])
        mark = ordered[2]
        watermark = (mark.close_at, mark.broker_trade_id, mark.close_tx_id)
        assert ledger.trades_after(watermark) == ordered[3:]
        assert ledger.trades_after(None, limit=2) == ordered[:2]
        assert ledger.trades_after(watermark, limit=0) == []

    def test_paging_with_a_watermark_visits_every_trade_once(
        self, ledger: SqlLedger, make_trade: MakeTrade
    ) -> None:
        """Reading in pages of 3 from the last watermark yields the whole ledger in order."""
        rng = random.Random(3)
        trades = [
            make_trade(
                broker_trade_id=str(rng.randint(1, 5)),
                close_tx_id=str(i),
                close_at=T0 + timedelta(seconds=rng.randint(0, 3)),
            )
            for i in range(20)
        ]
        ledger.upsert_trades(trades)
        seen: list[Trade] = []
        watermark = None
        while page := ledger.trades_after(watermark, limit=3):
            seen += page
            last = page[-1]
            watermark = (last.close_at, last.broker_trade_id, last.close_tx_id)
        assert seen == ledger_order(trades)

    def test_unicode_text_round_trips(self, ledger: SqlLedger, make_trade: MakeTrade) -> None:
        """Japanese, accents and emoji are stored and filtered verbatim."""
        trade = make_trade(pocket="マクロ", strategy="Momentum–Pulse 🚀", exit_reason="élan")
        ledger.upsert_trades([trade])
        assert ledger.trades(pocket="マクロ") == [trade]

    def test_count_and_last_close(self, ledger: SqlLedger, make_trade: MakeTrade) -> None:
        """count_trades and last_close_at describe what is stored."""
        ledger.upsert_trades(
            make_trade(broker_trade_id=str(h), close_at=T0 + timedelta(hours=h)) for h in (3, 1)
        )
        assert ledger.count_trades() == 2
        assert ledger.last_close_at() == T0 + timedelta(hours=3)

    def test_summary_counts_match_the_input(self, ledger: SqlLedger, make_trade: MakeTrade) -> None:
        """summary() agrees with counts and sums computed in Python from the same trades."""
        rng = random.Random(11)
        trades = [
            make_trade(
                broker_trade_id=str(i),
                pocket=rng.choice(["macro", "micro", "scalp"]),
                strategy=rng.choice(["A", "B"]),
                broker_close_reason=rng.choice(["STOP_LOSS_ORDER", "TAKE_PROFIT_ORDER", ""]),
                exit_reason=rng.choice(["", "hazard_exit"]),
                pl_pips=rng.uniform(-5, 5),
                pl_account=rng.uniform(-50, 50),
                close_at=T0 + timedelta(minutes=rng.randint(0, 600)),
            )
            for i in range(60)
        ]
        ledger.upsert_trades(trades)
        s = ledger.summary()
        assert s.trades == 60
        assert s.by_pocket == Counter(t.pocket for t in trades)
        assert s.by_strategy == Counter(t.strategy for t in trades)
        assert s.by_broker_close_reason == Counter(t.broker_close_reason for t in trades)
        assert s.by_exit_reason == Counter(t.exit_reason for t in trades)
        assert s.first_close_at == min(t.close_at for t in trades)
        assert s.last_close_at == max(t.close_at for t in trades)
        assert s.total_pl_pips == pytest.approx(sum(t.pl_pips for t in trades))
        assert s.total_pl_account == pytest.approx(sum(t.pl_account for t in trades))
        assert "trades: 60" in s.format()

    def test_summary_of_an_empty_ledger(self, ledger: SqlLedger) -> None:
        """An empty ledger summarises to zeros and no time span."""
        s = ledger.summary()
        assert (s.trades, s.first_close_at, s.total_pl_pips, s.by_pocket) == (0, None, 0.0, {})


class TestShadowSignals:
    def make_signal(self, **overrides: object) -> ShadowSignal:
        fields: dict[str, object] = {
            "signal_id": "s1",
            "at": T0,
            "instrument": "USD_JPY",
            "pocket": "micro",
            "strategy": "MomentumPulse",
            "side": Side.SHORT,
            "price": 151.5,
        }
        fields.update(overrides)
        return ShadowSignal(**fields)  # type: ignore[arg-type]

    def test_signals_round_trip_with_optional_fields(self, ledger: SqlLedger) -> None:
        """Signals with and without outcome/extra come back equal and in (at, id) order."""
        bare = self.make_signal(signal_id="b", at=T0 + timedelta(minutes=1))
        full = self.make_signal(
            signal_id="a",
            at=T0 + timedelta(minutes=1),
            sl_pips=5.0,
            tp_pips=7.5,
            outcome_pips=-5.0,
            outcome_at=T0 + timedelta(minutes=9),
            extra={"why": "perf_block", "注": "値"},
            reason="blocked",
        )
        early = self.make_signal(signal_id="z", at=T0)
        assert ledger.upsert_shadow_signals([bare, full, early]) == UpsertCounts(inserted=3)
        assert ledger.shadow_signals() == [early, full, bare]

    def test_outcome_filled_later_is_an_update(self, ledger: SqlLedger) -> None:
        """Filling outcome_pips on a stored signal counts as updated and is stored."""
        sig = self.make_signal()
        ledger.upsert_shadow_signals([sig])
        scored = dataclasses.replace(sig, outcome_pips=3.0, outcome_at=T0 + timedelta(hours=1))
        assert ledger.upsert_shadow_signals([sig, scored]) == UpsertCounts(updated=1, unchanged=1)
        assert ledger.shadow_signals() == [scored]

    def test_signal_filters(self, ledger: SqlLedger) -> None:
        """since is inclusive; pocket and strategy filter exactly."""
        sigs = [
            self.make_signal(signal_id="1", at=T0 - timedelta(microseconds=1)),
            self.make_signal(signal_id="2", at=T0),
            self.make_signal(signal_id="3", at=T0, pocket="scalp"),
            self.make_signal(signal_id="4", at=T0, strategy="Other"),
        ]
        ledger.upsert_shadow_signals(sigs)
        assert [s.signal_id for s in ledger.shadow_signals(since=T0)] == ["2", "3", "4"]
        got = ledger.shadow_signals(since=T0, pocket="micro", strategy="MomentumPulse")
        assert [s.signal_id for s in got] == ["2"]


class TestUndecodableRows:
    """Rows another writer (or an older version) stored that no longer validate."""

    @staticmethod
    def corrupt(ledger_url: str, statement: str) -> None:
        engine = sa.create_engine(ledger_url)
        with engine.begin() as conn:
            conn.execute(sa.text(statement))
        engine.dispose()

    def test_trade_row_that_fails_validation_is_a_ledger_error_naming_it(
        self, ledger: SqlLedger, ledger_url: str, make_trade: MakeTrade
    ) -> None:
        """A stored trade closing before it opened makes every read a LedgerError naming its key."""
        ledger.upsert_trades([make_trade(broker_trade_id="ok"), make_trade(broker_trade_id="bad")])
        self.corrupt(
            ledger_url,
            "UPDATE trades SET entry_at_us = close_at_us + 1000000 WHERE broker_trade_id = 'bad'",
        )
        pattern = r"trades row \(broker_trade_id='bad', close_tx_id='10'\) cannot be decoded"
        for read in (ledger.trades, lambda: ledger.trades_after(None)):
            with pytest.raises(LedgerError, match=pattern) as caught:
                read()
            assert isinstance(caught.value.__cause__, LedgerError)
            assert isinstance(caught.value.__cause__.__cause__, ValueError)
        assert ledger.trades(strategy="nobody") == []  # the ledger itself is still usable

    def test_trade_row_with_an_unknown_side_is_a_ledger_error(
        self, ledger: SqlLedger, ledger_url: str, make_trade: MakeTrade
    ) -> None:
        """An enum value this version does not know is reported with the table and key."""
        ledger.upsert_trades([make_trade(broker_trade_id="x")])
        self.corrupt(ledger_url, "UPDATE trades SET side = 'sideways'")
        with pytest.raises(LedgerError, match=r"trades row \(broker_trade_id='x'.*sideways"):
            ledger.trades()

    @pytest.mark.parametrize(
        ("column", "value"),
        [("extra", "'not json'"), ("extra", "'[1, 2]'"), ("signal_id", "''")],
    )
    def test_shadow_row_that_fails_to_decode_is_a_ledger_error_naming_it(
        self, ledger: SqlLedger, ledger_url: str, column: str, value: str
    ) -> None:
        """Broken JSON, non-object JSON or an empty id in shadow_signals is a LedgerError."""
        signal = ShadowSignal(
            signal_id="s9",
            at=T0,
            instrument="USD_JPY",
            pocket="micro",
            strategy="MomentumPulse",
            side=Side.SHORT,
            price=151.5,
        )
        ledger.upsert_shadow_signals([signal])
        self.corrupt(ledger_url, f"UPDATE shadow_signals SET {column} = {value}")
        with pytest.raises(LedgerError, match=r"shadow_signals row \(signal_id='.*'\) cannot be"):
            ledger.shadow_signals()


class TestCursors:
    def test_cursor_lifecycle(self, ledger: SqlLedger) -> None:
        """A missing cursor is None; set stores; set again overwrites; names are independent."""
        assert ledger.get_cursor("oanda:lastTransactionID") is None
        ledger.set_cursor("oanda:lastTransactionID", "11411")
        ledger.set_cursor("oanda:lastTransactionID", "11500")
        ledger.set_cursor("インポート", "✓")
        assert ledger.get_cursor("oanda:lastTransactionID") == "11500"
        assert ledger.get_cursor("インポート") == "✓"


class TestSchema:
    def test_reopen_keeps_data_and_version(self, ledger_url: str, make_trade: MakeTrade) -> None:
        """Opening an existing ledger again keeps its rows and its schema_version."""
        with SqlLedger.open(ledger_url) as first:
            first.upsert_trades([make_trade()])
        with SqlLedger.open(ledger_url) as again:
            assert again.count_trades() == 1
        engine = sa.create_engine(ledger_url)
        with engine.connect() as conn:
            version = conn.exec_driver_sql(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).scalar_one()
        engine.dispose()
        assert version == str(SCHEMA_VERSION)

    def test_newer_schema_version_is_refused_untouched(self, ledger_url: str) -> None:
        """A ledger written by a newer autolearn is refused with a clear LedgerError."""
        SqlLedger.open(ledger_url).close()
        engine = sa.create_engine(ledger_url)
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
            conn.exec_driver_sql("DROP TABLE cursors")
        with pytest.raises(LedgerError, match=r"schema_version '99'.*upgrade autolearn"):
            SqlLedger.open(ledger_url)
        with engine.connect() as conn:
            # Refused before create_all: the missing table was not re-created.
            assert not sa.inspect(conn).has_table("cursors")
        engine.dispose()


# ------------------------------------------------------------------------------------------
# Round-trip property

_text = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12
)
_finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
_STORAGE_ONLY = TradeLimits(
    future_tolerance=timedelta(days=200 * 366),
    max_abs_pl_pips=1e13,
    max_abs_pl_account=1e13,
    max_units=2**63,
    max_price=1e10,
)
_times = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=9)), timezone(-timedelta(hours=5))]),
)
_run_ids = itertools.count()


@st.composite
def trades_strategy(draw: st.DrawFn) -> list[Trade]:
    count = draw(st.integers(min_value=0, max_value=8))
    run = next(_run_ids)
    out: list[Trade] = []
    for i in range(count):
        entry_at = draw(_times)
        out.append(
            Trade(
                # A per-example prefix keeps examples apart in one ledger; the rest is random.
                broker_trade_id=f"r{run}.{i}:{draw(_text)}",
                close_tx_id=draw(_text),
                instrument=draw(_text.filter(bool)),
                pocket=draw(_text),
                strategy=draw(_text),
                side=draw(st.sampled_from(Side)),
                units=draw(st.integers(min_value=1, max_value=2**63 - 1)),
                entry_price=draw(st.floats(min_value=1e-9, max_value=1e9)),
                close_price=draw(st.floats(min_value=1e-9, max_value=1e9)),
                entry_at=entry_at,
                close_at=entry_at + draw(st.timedeltas(timedelta(0), timedelta(days=30))),
                pl_pips=draw(_finite),
                pl_account=draw(_finite),
                broker_close_reason=draw(_text),
                exit_reason=draw(_text),
                regime_macro=draw(_text),
                regime_micro=draw(_text),
                config_version=draw(_text),
                client_order_id=draw(_text),
                state=draw(st.sampled_from(TradeState)),
                source=draw(_text),
            )
        )
    return out


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(trades=trades_strategy())
def test_round_trip_property(ledger: SqlLedger, trades: list[Trade]) -> None:
    """Valid trades upserted read back equal, in the ledger order; re-upsert is a no-op."""
    ledger.limits = _STORAGE_ONLY  # this is about storage: any representable value
    # Examples share one ledger; each example's ids carry a unique prefix, so read those back.
    ledger.upsert_trades(trades)
    prefixes = {t.broker_trade_id.split(":", 1)[0] + ":" for t in trades}
    got = [t for t in ledger.trades() if t.broker_trade_id.split(":", 1)[0] + ":" in prefixes]
    assert got == ledger_order(trades)
    assert ledger.upsert_trades(trades) == UpsertCounts(unchanged=len(trades))


# ------------------------------------------------------------------------------------------
# Backend-specific behaviour


class TestSqliteSpecifics:
    def test_plain_path_creates_parent_dirs_and_uses_wal(
        self, tmp_path: Path, make_trade: MakeTrade
    ) -> None:
        """A bare filesystem path works, its directory is created and the file is in WAL mode."""
        path = tmp_path / "deep" / "er" / "ledger.db"
        with SqlLedger.open(str(path)) as ledger:
            ledger.upsert_trades([make_trade()])
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            # Times are integers in the file, never text.
            assert conn.execute("SELECT typeof(close_at_us) FROM trades").fetchone()[0] == (
                "integer"
            )
        finally:
            conn.close()

    def test_two_writers_on_one_file_count_each_row_once(
        self, tmp_path: Path, make_trade: MakeTrade
    ) -> None:
        """Concurrent overlapping upserts (bot + importer) insert every key exactly once."""
        path = str(tmp_path / "shared.db")
        SqlLedger.open(path).close()
        batches = [
            [make_trade(broker_trade_id=f"t{i}") for i in range(start, start + 3_000)]
            for start in (0, 1_500)
        ]
        results: list[UpsertCounts] = []

        def write(batch: list[Trade]) -> None:
            with SqlLedger.open(path) as ledger:
                results.append(ledger.upsert_trades(batch))

        threads = [threading.Thread(target=write, args=(b,)) for b in batches]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        total = results[0] + results[1]
        assert (total.inserted, total.unchanged, total.updated) == (4_500, 1_500, 0)
        with SqlLedger.open(path) as ledger:
            assert ledger.count_trades() == 4_500

    def test_unwritable_location_is_a_ledger_error(self, tmp_path: Path) -> None:
        """A path under a regular file cannot hold a ledger: LedgerError, not OSError."""
        blocker = tmp_path / "file"
        blocker.write_text("x")
        with pytest.raises(LedgerError, match="cannot create its directory"):
            SqlLedger.open(str(blocker / "sub" / "ledger.db"))

    @pytest.mark.slow
    def test_hundred_thousand_rows_upsert_in_seconds(
        self, tmp_path: Path, make_trade: MakeTrade
    ) -> None:
        """100k trades are inserted, then re-checked as unchanged, each well under a minute."""
        base = make_trade()
        trades = [dataclasses.replace(base, broker_trade_id=f"b{i}") for i in range(100_000)]
        with SqlLedger.open(str(tmp_path / "big.db")) as ledger:
            started = time.perf_counter()
            assert ledger.upsert_trades(trades) == UpsertCounts(inserted=100_000)
            assert ledger.upsert_trades(trades) == UpsertCounts(unchanged=100_000)
            elapsed = time.perf_counter() - started
        assert elapsed < 45, f"two 100k upserts took {elapsed:.1f} s"


class TestUrlsAndErrors:
    def test_password_is_redacted_from_connection_errors(self) -> None:
        """An unreachable PostgreSQL raises LedgerError that never shows the password."""
        url = "postgresql+psycopg://alice:s3cr3t-pw@127.0.0.1:1/ledger?connect_timeout=2"
        with pytest.raises(LedgerError) as caught:
            SqlLedger.open(url)
        assert "s3cr3t-pw" not in str(caught.value)
        assert "alice:***@127.0.0.1:1" in str(caught.value)

    def test_unparsable_url_does_not_echo_the_password(self) -> None:
        """A malformed URL is refused without quoting it (it may hold a password)."""
        with pytest.raises(LedgerError) as caught:
            SqlLedger.open("postgresql+psycopg://u:s3cr3t-pw@host:notaport/db")
        assert "s3cr3t-pw" not in str(caught.value)
        assert caught.value.__cause__ is None

    @pytest.mark.parametrize("url", ["mysql://u@h/db", "", "http://not a url"])
    def test_unsupported_urls_are_refused(self, url: str) -> None:
        """Anything but SQLite or PostgreSQL is a LedgerError naming the URL problem."""
        with pytest.raises(LedgerError):
            SqlLedger.open(url)


class TestTradeWriter:
    def test_record_trade_is_idempotent(self, ledger_url: str, make_trade: MakeTrade) -> None:
        """Recording the same fill twice stores one row."""
        with TradeWriter.open(ledger_url) as writer:
            assert writer.record_trade(make_trade()) == UpsertCounts(inserted=1)
            assert writer.record_trade(make_trade()) == UpsertCounts(unchanged=1)
            sig = ShadowSignal(
                signal_id="s", at=T0, instrument="USD_JPY", pocket="p", strategy="s",
                side=Side.LONG, price=1.0,
            )  # fmt: skip
            assert writer.record_shadow_signal(sig) == UpsertCounts(inserted=1)
            assert writer.ledger.count_trades() == 1

    def test_retries_while_another_process_holds_the_sqlite_lock(
        self, tmp_path: Path, make_trade: MakeTrade
    ) -> None:
        """'database is locked' is retried after a pause; the write lands once the lock is gone."""
        path = tmp_path / "ledger.db"
        SqlLedger.open(str(path)).close()
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        pauses: list[float] = []

        def sleep(seconds: float) -> None:
            pauses.append(seconds)
            blocker.execute("COMMIT")  # the other process finishes its write

        ledger = SqlLedger.open(str(path), sqlite_busy_timeout_ms=50)
        with TradeWriter(ledger, retries=3, backoff_s=0.01, sleep=sleep) as writer:
            assert writer.record_trade(make_trade()) == UpsertCounts(inserted=1)
            assert ledger.count_trades() == 1
        blocker.close()
        assert pauses == [0.01]

    def test_gives_up_after_retries_and_never_retries_other_errors(
        self, tmp_path: Path, make_trade: MakeTrade
    ) -> None:
        """A lock that never clears raises after the retries; a bad value raises at once."""
        path = tmp_path / "ledger.db"
        ledger = SqlLedger.open(str(path), sqlite_busy_timeout_ms=20)
        pauses: list[float] = []
        writer = TradeWriter(ledger, retries=2, backoff_s=0.01, sleep=pauses.append)
        with pytest.raises(LedgerError, match="NUL"):
            writer.record_trade(make_trade(pocket="\x00"))
        assert pauses == []
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(LedgerError, match="locked"):
                writer.record_trade(make_trade())
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
            writer.close()
        assert pauses == [0.01, 0.02]
