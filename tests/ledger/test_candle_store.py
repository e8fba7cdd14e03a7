"""The ledger's candle store on SQLite and PostgreSQL: round trip, counts, ranges, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autolearn.backtest import Candles, load_candles
from autolearn.core.timestamps import to_epoch_us
from autolearn.errors import InputError, LedgerError
from autolearn.ledger import SqlLedger
from autolearn.replay.ledger import CachedLedger

T0 = datetime(2025, 1, 6, tzinfo=UTC)
DATA = Path(__file__).resolve().parents[1] / "data" / "fx"


def make_candles(
    n: int,
    *,
    start: datetime = T0,
    step_s: int = 60,
    spread: bool = True,
    instrument: str = "USD_JPY",
    source: str = "test",
    shift: float = 0.0,
) -> Candles:
    """``n`` valid bars ``step_s`` apart from ``start`` (prices wander; spread 0.5-1.2 pips)."""
    i = np.arange(n, dtype=np.float64)
    mid = 150.0 + 0.01 * np.sin(i) + shift
    return Candles(
        instrument=instrument,
        timeframe_s=step_s,
        time_us=to_epoch_us(start) + np.arange(n, dtype=np.int64) * step_s * 1_000_000,
        open=mid,
        high=mid + 0.02,
        low=mid - 0.02,
        close=mid + 0.005,
        volume=i % 7,
        source=source,
        spread_pips=0.5 + (i % 8) / 10 if spread else None,
    )


def assert_same_bars(got: Candles, want: Candles) -> None:
    for name in ("time_us", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    if want.spread_pips is None:
        assert got.spread_pips is None
    else:
        assert got.spread_pips is not None
        np.testing.assert_array_equal(got.spread_pips, want.spread_pips)
    assert (got.instrument, got.timeframe_s) == (want.instrument, want.timeframe_s)


class TestRoundTrip:
    def test_bars_and_spread_come_back_identical(self, ledger: SqlLedger) -> None:
        """Every price, volume and spread reads back bit for bit, with the source per bar."""
        bars = make_candles(500)
        counts = ledger.upsert_candles(bars)
        assert (counts.inserted, counts.updated, counts.unchanged) == (500, 0, 0)
        got = ledger.candles("USD_JPY")
        assert_same_bars(got, bars)
        assert got.source == "test"

    def test_mid_only_bars_read_back_without_spread(self, ledger: SqlLedger) -> None:
        """A source without a spread stores NULL and reads back spread_pips None."""
        bars = make_candles(10, spread=False)
        ledger.upsert_candles(bars)
        assert_same_bars(ledger.candles("USD_JPY"), bars)

    def test_a_range_mixing_sources_with_and_without_spread_reads_mid_only(
        self, ledger: SqlLedger
    ) -> None:
        """Half the bars with a spread, half without: no partial spread array is invented."""
        ledger.upsert_candles(make_candles(10))
        ledger.upsert_candles(make_candles(10, start=T0 + timedelta(minutes=10), spread=False))
        both = ledger.candles("USD_JPY")
        assert len(both) == 20 and both.spread_pips is None
        first = ledger.candles("USD_JPY", until=T0 + timedelta(minutes=10))
        assert first.spread_pips is not None and len(first) == 10

    def test_more_than_one_chunk_is_counted_exactly(self, ledger: SqlLedger) -> None:
        """5,000 bars span several write chunks; a second upsert is all unchanged."""
        bars = make_candles(5000)
        assert ledger.upsert_candles(bars).inserted == 5000
        again = ledger.upsert_candles(bars)
        assert (again.inserted, again.updated, again.unchanged) == (0, 0, 5000)

    def test_changed_bars_are_updated_and_the_rest_unchanged(self, ledger: SqlLedger) -> None:
        """Re-delivering bars with other prices updates exactly those rows (last writer wins)."""
        ledger.upsert_candles(make_candles(20))
        changed = make_candles(5, start=T0 + timedelta(minutes=15), shift=0.1)
        counts = ledger.upsert_candles(changed)
        assert (counts.inserted, counts.updated, counts.unchanged) == (0, 5, 0)
        got = ledger.candles("USD_JPY", since=T0 + timedelta(minutes=15))
        assert_same_bars(got, changed)

    def test_instruments_and_granularities_are_kept_apart(self, ledger: SqlLedger) -> None:
        """M1 and M5 of one instrument, and another instrument, never mix in a read."""
        ledger.upsert_candles(make_candles(10))
        ledger.upsert_candles(make_candles(4, step_s=300), granularity="M5")
        ledger.upsert_candles(make_candles(3, instrument="EUR_USD"))
        assert len(ledger.candles("USD_JPY")) == 10
        m5 = ledger.candles("USD_JPY", granularity="M5")
        assert len(m5) == 4 and m5.timeframe_s == 300
        assert len(ledger.candles("EUR_USD")) == 3

    def test_a_real_file_with_a_spread_column_round_trips(self, ledger: SqlLedger) -> None:
        """The tb-logs MT5 H1 file (spread in points) lands with its spread in pips."""
        path = next((DATA / "mt5-tb-logs").glob("*.csv"))
        bars = load_candles(path)
        assert bars.spread_pips is not None and float(bars.spread_pips.max()) > 0
        ledger.upsert_candles(bars, granularity="H1")
        assert_same_bars(ledger.candles(bars.instrument, granularity="H1"), bars)

    def test_the_replay_cache_forwards_both_ways(self, ledger: SqlLedger) -> None:
        """CachedLedger writes candles through and reads them from the SQL store."""
        cached = CachedLedger(ledger)
        bars = make_candles(7)
        assert cached.upsert_candles(bars).inserted == 7
        assert_same_bars(cached.candles("USD_JPY", since=T0), bars)


class TestRanges:
    def test_since_is_inclusive_and_until_exclusive_on_the_open_time(
        self, ledger: SqlLedger
    ) -> None:
        """since <= open time < until, sorted."""
        ledger.upsert_candles(make_candles(10))
        got = ledger.candles(
            "USD_JPY", since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=5)
        )
        assert [(int(t) - to_epoch_us(T0)) // 60_000_000 for t in got.time_us] == [2, 3, 4]

    def test_nothing_stored_is_an_empty_candles_of_the_granularity(self, ledger: SqlLedger) -> None:
        """An unknown instrument or an empty range reads as zero bars, not an error."""
        empty = ledger.candles("GBP_USD", granularity="H1")
        assert len(empty) == 0 and empty.timeframe_s == 3600 and empty.instrument == "GBP_USD"

    def test_bars_inserted_out_of_order_read_back_sorted(self, ledger: SqlLedger) -> None:
        """Later bars stored first: the read is still in time order."""
        ledger.upsert_candles(make_candles(5, start=T0 + timedelta(minutes=5)))
        ledger.upsert_candles(make_candles(5))
        assert bool(np.all(np.diff(ledger.candles("USD_JPY").time_us) > 0))


class TestRefusals:
    def test_an_unknown_granularity_is_a_clear_error_on_read_and_write(
        self, ledger: SqlLedger
    ) -> None:
        """'M3' is no OANDA granularity: both calls name it and list the known ones."""
        with pytest.raises(InputError, match=r"'M3'.*known"):
            ledger.candles("USD_JPY", granularity="M3")
        with pytest.raises(InputError, match="'M3'"):
            ledger.upsert_candles(make_candles(2), granularity="M3")

    def test_a_timeframe_that_does_not_match_the_granularity_is_refused(
        self, ledger: SqlLedger
    ) -> None:
        """M5 bars stored as M1 would shift every exit: refused, nothing written."""
        with pytest.raises(InputError, match="300s bars, granularity M1"):
            ledger.upsert_candles(make_candles(3, step_s=300), granularity="M1")
        assert len(ledger.candles("USD_JPY")) == 0

    def test_a_bar_in_the_future_is_refused(self, ledger_url: str) -> None:
        """A bar opening after the wall clock cannot be complete: refused, nothing written."""
        clock = lambda: T0 + timedelta(minutes=5)  # noqa: E731
        with SqlLedger.open(ledger_url, wall_clock=clock) as ledger:
            with pytest.raises(InputError, match="future"):
                ledger.upsert_candles(make_candles(10))
            assert len(ledger.candles("USD_JPY")) == 0

    def test_a_corrupt_stored_row_is_a_ledger_error_naming_it(self, ledger_url: str) -> None:
        """A row written behind our back with high < low reads as LedgerError with its time."""
        with SqlLedger.open(ledger_url) as ledger:
            ledger.upsert_candles(make_candles(3))
        engine = sa.create_engine(ledger_url)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE candles SET high = 1.0 WHERE time_us = :t"), {"t": _us(1)})
        engine.dispose()
        with SqlLedger.open(ledger_url) as ledger, pytest.raises(LedgerError, match=str(_us(1))):
            ledger.candles("USD_JPY")

    def test_candles_refuse_a_negative_spread(self) -> None:
        """The value itself checks its spread: finite and >= 0, else ValueError with the bar."""
        with pytest.raises(ValueError, match=r"spread_pips.*bar 0"):
            Candles(
                instrument="USD_JPY",
                timeframe_s=60,
                time_us=np.array([0]),
                open=np.array([1.0]),
                high=np.array([1.0]),
                low=np.array([1.0]),
                close=np.array([1.0]),
                volume=np.array([0.0]),
                spread_pips=np.array([-0.1]),
            )


def _us(minute: int) -> int:
    return to_epoch_us(T0 + timedelta(minutes=minute))


_bars = st.lists(
    st.tuples(
        st.integers(0, 10_000),  # minute of the bar
        st.floats(100.0, 200.0, allow_nan=False),  # mid
        st.floats(0.0, 0.5, allow_nan=False),  # half range
        st.floats(0.0, 5.0, allow_nan=False),  # spread, pips
        st.floats(0.0, 1e6, allow_nan=False),  # volume
    ),
    max_size=40,
    unique_by=lambda b: b[0],
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(bars=_bars, since=st.integers(0, 10_000), span=st.integers(0, 10_000))
def test_property_the_store_returns_exactly_the_bars_of_the_range(
    tmp_path_factory: Any, bars: list[Any], since: int, span: int
) -> None:
    """Property (SQLite): any stored set reads back as exactly its bars in [since, until)."""
    bars.sort()
    minutes = np.array([b[0] for b in bars], dtype=np.int64)
    mid = np.array([b[1] for b in bars])
    half = np.array([b[2] for b in bars])
    candles = Candles(
        instrument="EUR_USD",
        timeframe_s=60,
        time_us=to_epoch_us(T0) + minutes * 60_000_000,
        open=mid,
        high=mid + half,
        low=mid - half,
        close=mid,
        volume=np.array([b[4] for b in bars]),
        spread_pips=np.array([b[3] for b in bars]),
    )
    url = f"sqlite:///{tmp_path_factory.mktemp('prop') / 'ledger.db'}"
    with SqlLedger.open(url) as ledger:
        ledger.upsert_candles(candles)
        got = ledger.candles(
            "EUR_USD",
            since=T0 + timedelta(minutes=since),
            until=T0 + timedelta(minutes=since + span),
        )
    keep = (minutes >= since) & (minutes < since + span)
    np.testing.assert_array_equal(got.time_us, candles.time_us[keep])
    np.testing.assert_array_equal(got.open, candles.open[keep])
    if keep.any():
        assert got.spread_pips is not None
        np.testing.assert_array_equal(got.spread_pips, candles.spread_pips[keep])
