"""The signal log (``signals``): contract suite on SQLite and PostgreSQL (``ledger`` fixture).

Every evaluated entry is stored once per ``signal_id`` with its scores, read back exactly, in
``(at, signal_id)`` order; shadow signals map onto it; implausible signals are refused.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autolearn.core.model import EntrySignal, ShadowSignal, Side
from autolearn.core.plausibility import TradeLimits
from autolearn.errors import InputError, LedgerError
from autolearn.ledger import Ledger, SqlLedger, TradeWriter, UpsertCounts
from autolearn.ledger._schema import metadata
from autolearn.replay import CachedLedger

T0 = datetime(2025, 10, 22, 8, 0, tzinfo=UTC)


def make(**overrides: Any) -> EntrySignal:
    """A valid not-taken signal at T0; keyword arguments override fields."""
    fields: dict[str, Any] = {
        "signal_id": "s1",
        "at": T0,
        "instrument": "USD_JPY",
        "pocket": "micro",
        "strategy": "MomentumPulse",
        "side": Side.LONG,
        "price": 151.5,
        "scores": {"confidence": 0.61},
        "taken": False,
        "not_taken": "threshold",
    }
    fields.update(overrides)
    return EntrySignal(**fields)


def shadow(**overrides: Any) -> ShadowSignal:
    """A valid shadow signal at T0; keyword arguments override fields."""
    fields: dict[str, Any] = {
        "signal_id": "sh1",
        "at": T0,
        "instrument": "USD_JPY",
        "pocket": "micro",
        "strategy": "MomentumPulse",
        "side": Side.SHORT,
        "price": 151.5,
    }
    fields.update(overrides)
    return ShadowSignal(**fields)


def stored_rows(ledger_url: str) -> list[tuple[Any, ...]]:
    """Every ``signals`` row as the database holds it (ingestion time included)."""
    engine = sa.create_engine(ledger_url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.text("SELECT * FROM signals ORDER BY 1"))]
    engine.dispose()
    return rows


class TestRoundTrip:
    def test_every_field_round_trips_exactly(self, ledger: SqlLedger) -> None:
        """A signal with every field set, unicode and awkward floats, reads back equal."""
        full = make(
            at=T0.astimezone(timezone(timedelta(hours=9))) + timedelta(microseconds=7),
            side=Side.SHORT,
            price=151.123456789,
            sl_pips=8.0,
            tp_pips=12.5,
            timeout_s=1800.0,
            scores={"confidence": 0.1 + 0.2, "vwap_z_abs": 2.2e-17, "負": -1e9},
            unit_id="unit-B",
            taken=True,
            not_taken="",
            broker_trade_id="T42",
            config_version="cfg-7",
            extra={"regime": "quiet", "注": "値"},
        )
        bare = make(signal_id="s2", scores={}, not_taken="gate:max_drawdown")
        assert ledger.upsert_signals([full, bare]) == UpsertCounts(inserted=2)
        got = ledger.signals()
        assert got == [bare, full]  # bare is 7 microseconds earlier
        assert got[1].scores["confidence"] == 0.1 + 0.2  # bit-exact, not rounded

    def test_scores_and_extra_are_stored_as_canonical_json(
        self, ledger: SqlLedger, ledger_url: str
    ) -> None:
        """Key order of the caller's dicts does not matter: the stored text is sorted."""
        ledger.upsert_signals([make(scores={"b": 2.0, "a": 1.0}, extra={"y": "2", "x": "1"})])
        engine = sa.create_engine(ledger_url)
        with engine.connect() as conn:
            scores, extra = conn.execute(sa.text("SELECT scores, extra FROM signals")).one()
        engine.dispose()
        assert (scores, extra) == ('{"a": 1.0, "b": 2.0}', '{"x": "1", "y": "2"}')
        reordered = make(scores={"a": 1.0, "b": 2.0}, extra={"x": "1", "y": "2"})
        assert ledger.upsert_signals([reordered]) == UpsertCounts(unchanged=1)


class TestUpsert:
    def test_same_signals_twice_are_stored_once(self, ledger: SqlLedger) -> None:
        """Re-delivering a batch inserts nothing and counts every row as unchanged."""
        batch = [make(signal_id=f"s{i}") for i in range(4)]
        assert ledger.upsert_signals(batch) == UpsertCounts(inserted=4)
        assert ledger.upsert_signals(batch) == UpsertCounts(unchanged=4)
        assert len(ledger.signals()) == 4

    def test_trade_id_learned_later_is_an_update(self, ledger: SqlLedger) -> None:
        """Recording a taken signal again with its broker_trade_id updates the row."""
        decided = make(taken=True, not_taken="")
        ledger.upsert_signals([decided])
        filled = dataclasses.replace(decided, broker_trade_id="T9")
        assert ledger.upsert_signals([filled]) == UpsertCounts(updated=1)
        assert ledger.signals() == [filled]

    def test_changed_score_is_an_update(self, ledger: SqlLedger) -> None:
        """A different score value is a change, stored and counted as updated."""
        ledger.upsert_signals([make()])
        rescored = make(scores={"confidence": 0.62})
        assert ledger.upsert_signals([make(), rescored]) == UpsertCounts(updated=1, unchanged=1)
        assert ledger.signals() == [rescored]


_signals = st.builds(
    lambda i, minute, taken, conf, sl: make(
        signal_id=f"s{i}",
        at=T0 + timedelta(minutes=minute),
        taken=taken,
        not_taken="" if taken else "threshold",
        scores={"confidence": conf},
        sl_pips=sl,
    ),
    st.integers(0, 6),  # repeated ids on purpose
    st.integers(0, 3),
    st.booleans(),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.none() | st.floats(0.1, 50, allow_nan=False),
)
_PROPERTY = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _clear(ledger_url: str) -> None:
    engine = sa.create_engine(ledger_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM signals"))
    engine.dispose()


def _content(ledger_url: str) -> list[tuple[Any, ...]]:
    ingested = list(metadata.tables["signals"].columns.keys()).index("ingested_at_us")
    return [row[:ingested] + row[ingested + 1 :] for row in stored_rows(ledger_url)]


@_PROPERTY
@given(batch=st.lists(_signals, max_size=15, unique_by=lambda s: s.signal_id))
def test_upserting_a_list_twice_changes_nothing(
    ledger: SqlLedger, ledger_url: str, batch: list[EntrySignal]
) -> None:
    """Property: a second upsert of a batch (one version per id) counts every signal
    unchanged and leaves every stored row as it was, ingestion time included."""
    assert ledger.upsert_signals(batch) == UpsertCounts(inserted=len(batch))
    before = stored_rows(ledger_url)
    assert ledger.upsert_signals(batch) == UpsertCounts(unchanged=len(batch))
    assert stored_rows(ledger_url) == before
    assert ledger.signals() == sorted(batch, key=lambda s: (s.at, s.signal_id))
    _clear(ledger_url)  # the next example gets the same ledger


@_PROPERTY
@given(batch=st.lists(_signals, max_size=15))
def test_upserting_any_list_again_is_stable(
    ledger: SqlLedger, ledger_url: str, batch: list[EntrySignal]
) -> None:
    """Property: with ids repeated inside the batch too, every later upsert of it counts the
    same and leaves the stored content unchanged; reads give the last version per id."""
    ledger.upsert_signals(batch)
    content = _content(ledger_url)
    second = ledger.upsert_signals(batch)
    assert _content(ledger_url) == content
    assert ledger.upsert_signals(batch) == second
    assert _content(ledger_url) == content
    last = {s.signal_id: s for s in batch}
    assert ledger.signals() == sorted(last.values(), key=lambda s: (s.at, s.signal_id))
    _clear(ledger_url)  # the next example gets the same ledger


class TestReads:
    def test_window_includes_since_and_excludes_until(self, ledger: SqlLedger) -> None:
        """``since <= at < until``, to the microsecond."""
        us = timedelta(microseconds=1)
        ledger.upsert_signals(
            [make(signal_id=n, at=T0 + d) for n, d in (("a", -us), ("b", 0 * us), ("c", us))]
        )
        assert [s.signal_id for s in ledger.signals(since=T0, until=T0 + us)] == ["b"]
        assert [s.signal_id for s in ledger.signals(until=T0)] == ["a"]
        assert [s.signal_id for s in ledger.signals(since=T0 + us)] == ["c"]

    def test_order_is_time_then_id_in_code_point_order(self, ledger: SqlLedger) -> None:
        """Ties on ``at`` are broken by signal_id as Python sorts it, on both backends."""
        ids = ["b", "B", "a", "é", "10", "9"]
        later = make(signal_id="0", at=T0 + timedelta(seconds=1))
        ledger.upsert_signals([later, *(make(signal_id=i) for i in ids)])
        assert [s.signal_id for s in ledger.signals()] == [*sorted(ids), "0"]

    def test_filters_combine(self, ledger: SqlLedger) -> None:
        """instrument, pocket and strategy each filter exactly, and together."""
        ledger.upsert_signals(
            [
                make(signal_id="1"),
                make(signal_id="2", instrument="EUR_USD"),
                make(signal_id="3", pocket="scalp"),
                make(signal_id="4", strategy="MicroVWAPRevert"),
            ]
        )
        assert [s.signal_id for s in ledger.signals(instrument="EUR_USD")] == ["2"]
        assert [s.signal_id for s in ledger.signals(pocket="scalp")] == ["3"]
        assert [s.signal_id for s in ledger.signals(strategy="MicroVWAPRevert")] == ["4"]
        got = ledger.signals(instrument="USD_JPY", pocket="micro", strategy="MomentumPulse")
        assert [s.signal_id for s in got] == ["1"]

    def test_ledger_protocol_has_the_signal_log(self, ledger: SqlLedger) -> None:
        """SqlLedger still satisfies the Ledger seam with the two new methods."""
        seam: Ledger = ledger
        assert seam.upsert_signals([make()]) == UpsertCounts(inserted=1)
        assert seam.signals() == [make()]


class TestShadowSignalsMapOntoTheLog:
    def test_shadow_signal_enters_the_log_as_not_taken(self, ledger: SqlLedger) -> None:
        """Upserting a shadow signal also stores its signal-log row (reason, else 'shadow')."""
        a = shadow(signal_id="a", reason="policy_block", sl_pips=5.0, extra={"k": "v"})
        b = shadow(signal_id="b", at=T0 + timedelta(seconds=1))
        assert ledger.upsert_shadow_signals([a, b]) == UpsertCounts(inserted=2)
        assert ledger.signals() == [
            EntrySignal(
                signal_id="a", at=T0, instrument="USD_JPY", pocket="micro",
                strategy="MomentumPulse", side=Side.SHORT, price=151.5, sl_pips=5.0,
                taken=False, not_taken="policy_block", extra={"k": "v"},
            ),
            EntrySignal(
                signal_id="b", at=T0 + timedelta(seconds=1), instrument="USD_JPY",
                pocket="micro", strategy="MomentumPulse", side=Side.SHORT, price=151.5,
                taken=False, not_taken="shadow",
            ),
        ]  # fmt: skip

    def test_a_recorded_signal_is_never_overwritten_by_its_shadow(self, ledger: SqlLedger) -> None:
        """Whichever arrives first, the signal the bot recorded (with scores) is what the log
        holds; re-delivering the shadow (its outcome filled in) changes nothing there."""
        rich = make(signal_id="x", side=Side.SHORT, not_taken="policy_block")
        ledger.upsert_signals([rich])
        ledger.upsert_shadow_signals([shadow(signal_id="x", reason="policy_block")])
        assert ledger.signals() == [rich]
        ledger.upsert_shadow_signals([shadow(signal_id="y", reason="policy_block")])
        rich_y = dataclasses.replace(rich, signal_id="y")
        assert ledger.upsert_signals([rich_y]) == UpsertCounts(updated=1)
        outcome = shadow(signal_id="y", reason="policy_block", outcome_pips=3.0)
        assert ledger.upsert_shadow_signals([outcome]) == UpsertCounts(updated=1)
        assert ledger.signals() == [rich, rich_y]

    def test_shadow_and_its_log_row_land_together(self, ledger: SqlLedger) -> None:
        """A batch refused part-way stores neither the refused shadow nor its log row."""
        far = shadow(signal_id="far", at=datetime(9999, 1, 1, tzinfo=UTC))
        with pytest.raises(InputError):
            ledger.upsert_shadow_signals([far])
        assert ledger.shadow_signals() == [] and ledger.signals() == []


class TestRefusals:
    def test_future_signal_is_refused_naming_it(self, tmp_path: Path) -> None:
        """A signal after the wall clock plus the skew tolerance is an InputError naming it."""
        now = T0
        ledger = SqlLedger.open(f"sqlite:///{tmp_path / 'l.db'}", wall_clock=lambda: now)
        ok = make(signal_id="ok", at=now + timedelta(minutes=4))
        assert ledger.upsert_signals([ok]) == UpsertCounts(inserted=1)
        with pytest.raises(InputError, match=r"refused signal late .*at .*in the future"):
            ledger.upsert_signals([make(signal_id="late", at=now + timedelta(minutes=6))])
        assert ledger.signals() == [ok]
        ledger.close()

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"price": 1e300}, "price"),
            ({"sl_pips": 1e12}, "sl_pips"),
            ({"timeout_s": 1e15}, "timeout_s"),
            ({"scores": {"confidence": 1e300}}, "scores['confidence']"),
        ],
    )
    def test_absurd_magnitude_is_refused_naming_the_field(
        self, ledger: SqlLedger, overrides: dict[str, Any], field: str
    ) -> None:
        """Finite but absurd values are refused with the signal and the field; nothing stored."""
        with pytest.raises(InputError, match="refused signal s1") as caught:
            ledger.upsert_signals([make(**overrides)])
        assert field in str(caught.value)
        assert ledger.signals() == []

    def test_limits_apply_to_the_score_bound(self, tmp_path: Path) -> None:
        """max_abs_signal_score from the ledger's limits bounds every score."""
        limits = TradeLimits(max_abs_signal_score=1.0)
        with (
            SqlLedger.open(f"sqlite:///{tmp_path / 'l.db'}", limits=limits) as ledger,
            pytest.raises(InputError, match="vwap_z_abs"),
        ):
            ledger.upsert_signals([make(scores={"vwap_z_abs": 2.2})])

    def test_text_with_nul_is_refused(self, ledger: SqlLedger) -> None:
        """A NUL in a text field cannot be stored identically on both backends: refused."""
        with pytest.raises(LedgerError, match="NUL"):
            ledger.upsert_signals([make(not_taken="gate:\x00")])

    def test_undecodable_stored_row_is_a_ledger_error_naming_it(
        self, ledger: SqlLedger, ledger_url: str
    ) -> None:
        """A row another writer left inconsistent (taken with a reason) fails the read loudly."""
        ledger.upsert_signals([make(signal_id="bad")])
        engine = sa.create_engine(ledger_url)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE signals SET taken = true"))
        engine.dispose()
        with pytest.raises(LedgerError, match=r"signals row \(signal_id='bad'\).*not_taken"):
            ledger.signals()

    def test_scores_that_are_not_an_object_are_undecodable(
        self, ledger: SqlLedger, ledger_url: str
    ) -> None:
        """``scores`` holding a JSON list is reported as undecodable, not crashed on."""
        ledger.upsert_signals([make()])
        engine = sa.create_engine(ledger_url)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE signals SET scores = '[1]'"))
        engine.dispose()
        with pytest.raises(LedgerError, match="scores must be a JSON object"):
            ledger.signals()


class TestWriterAndCache:
    def test_record_signal_is_idempotent(self, ledger_url: str) -> None:
        """The bot recording the same evaluation twice stores one row."""
        with TradeWriter.open(ledger_url) as writer:
            assert writer.record_signal(make()) == UpsertCounts(inserted=1)
            assert writer.record_signal(make()) == UpsertCounts(unchanged=1)
            writer.record_shadow_signal(shadow())
            assert [s.signal_id for s in writer.ledger.signals()] == ["s1", "sh1"]

    def test_record_signal_retries_a_locked_ledger(self, ledger_url: str) -> None:
        """A 'database is locked' failure is retried like record_trade's, then succeeds."""
        from sqlalchemy.exc import OperationalError

        with TradeWriter.open(ledger_url, sleep=lambda _s: None) as writer:
            real = writer.ledger.upsert_signals
            failures = [1]

            def flaky(signals: Any) -> UpsertCounts:
                if failures:
                    failures.pop()
                    raise LedgerError("locked") from OperationalError(
                        "x", {}, Exception("database is locked")
                    )
                return real(signals)

            writer.ledger.upsert_signals = flaky  # type: ignore[method-assign]
            assert writer.record_signal(make()) == UpsertCounts(inserted=1)
            assert failures == []

    def test_cached_ledger_reads_are_fresh_after_writes(self, tmp_path: Path) -> None:
        """Through the replay's cache, reads see every write at once, and the SQL ledger holds the
        same once the cache has written behind (flush, close)."""
        sql = SqlLedger.open(f"sqlite:///{tmp_path / 'l.db'}")
        cache = CachedLedger(sql)
        assert cache.upsert_signals([make(), make(signal_id="s2")]) == UpsertCounts(inserted=2)
        cache.upsert_shadow_signals([shadow()])
        changed = make(scores={"confidence": 0.7})
        assert cache.upsert_signals([changed]) == UpsertCounts(updated=1)
        assert cache.signals()[0] == changed  # before anything reached SQL
        cache.flush()
        for kwargs in ({}, {"since": T0, "until": T0 + timedelta(seconds=1)}, {"pocket": "x"}):
            assert cache.signals(**kwargs) == sql.signals(**kwargs)
        assert [s.signal_id for s in cache.signals()] == ["s1", "s2", "sh1"]
        assert cache.signals()[0] == changed
        cache.close()
