"""The replay's ledger cache answers every read exactly like the SQL ledger it writes through."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autolearn.backtest.candles import Candles
from autolearn.core.model import EntrySignal, ShadowSignal, Side, Trade
from autolearn.ledger.sql import SqlLedger
from autolearn.replay import CachedLedger

T0 = datetime(2018, 7, 2, tzinfo=UTC)

trade_rows = st.lists(
    st.tuples(
        st.integers(0, 30),  # close minute (ties on purpose)
        st.integers(0, 5),  # broker trade id
        st.sampled_from(["c1", "c2"]),  # close tx id
        st.sampled_from(["macro", "micro", "scalp"]),
        st.sampled_from(["A", "B"]),
        st.floats(-5, 5, allow_nan=False),
    ),
    max_size=25,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=trade_rows,
    lo=st.integers(-1, 31),
    hi=st.integers(-1, 32),
    pocket=st.sampled_from([None, "micro"]),
)
def test_reads_equal_sql(
    tmp_path_factory: object,
    make_trade: Callable[..., Trade],
    make_signal: Callable[..., ShadowSignal],
    rows: list[tuple[int, int, str, str, str, float]],
    lo: int,
    hi: int,
    pocket: str | None,
) -> None:
    """trades(), trades_after(), shadow_signals(), signals(), last_close_at() match SQL after
    upserts: shadow signals reach the signal log only under an id it does not hold yet."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        sql = SqlLedger.open(f"sqlite:///{Path(tmp) / 'l.db'}", clock=lambda: T0)
        cache = CachedLedger(sql)
        for minute, tid, tx, pocket_, strat, pl in rows:
            close_at = T0 + timedelta(minutes=minute)
            cache.upsert_trades(
                [
                    make_trade(
                        close_at=close_at,
                        pl_pips=pl,
                        broker_trade_id=f"t{tid}",
                        close_tx_id=tx,
                        pocket=pocket_,
                        strategy=strat,
                        entry_at=close_at - timedelta(minutes=1),
                    )
                ]
            )
            cache.upsert_shadow_signals(
                [make_signal(at=close_at, outcome_pips=pl, signal_id=f"s{tid}", pocket=pocket_)]
            )
            if tx == "c2":  # the bot logs some of them itself, before or after the shadow copy
                cache.upsert_signals([_entry(f"s{(tid + minute) % 6}", close_at, pocket_, pl)])
        cache.flush()  # the signal log is written behind
        since = None if lo < 0 else T0 + timedelta(minutes=lo)
        until = None if hi < 0 else T0 + timedelta(minutes=hi)
        assert cache.trades(closed_since=since, closed_until=until, pocket=pocket) == sql.trades(
            closed_since=since, closed_until=until, pocket=pocket
        )
        everything = sql.trades()
        marks = [None] + [(t.close_at, t.broker_trade_id, t.close_tx_id) for t in everything]
        for mark in marks:
            assert cache.trades_after(mark) == sql.trades_after(mark)
        assert cache.shadow_signals(since=since, pocket=pocket) == sql.shadow_signals(
            since=since, pocket=pocket
        )
        assert cache.signals(since=since, until=until, pocket=pocket) == sql.signals(
            since=since, until=until, pocket=pocket
        )
        assert CachedLedger(sql).signals() == sql.signals()
        assert cache.last_close_at() == sql.last_close_at()
        assert cache.count_trades() == sql.count_trades()
        # a fresh cache over the same file starts from what SQL holds
        assert CachedLedger(sql).trades() == everything
        sql.close()


def _entry(signal_id: str, at: datetime, pocket: str, score: float) -> EntrySignal:
    return EntrySignal(
        signal_id=signal_id,
        at=at,
        instrument="EUR_USD",
        pocket=pocket,
        strategy="A",
        side=Side.LONG,
        price=1.1,
        sl_pips=6.0,
        tp_pips=6.0,
        timeout_s=1800.0,
        scores={"confidence": score},
        taken=False,
        not_taken="threshold",
    )


@settings(max_examples=12, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=5),
    lo=st.integers(-1, 120),
    hi=st.integers(-1, 130),
    read_first=st.booleans(),
)
def test_candles_equal_sql_as_the_replay_appends_bars(
    sizes: list[int], lo: int, hi: int, read_first: bool
) -> None:
    """Bars written in time order, read between writes: the cache answers like SQL."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        sql = SqlLedger.open(f"sqlite:///{Path(tmp) / 'l.db'}", clock=lambda: T0 + timedelta(1))
        cache = CachedLedger(sql)
        if read_first:
            assert len(cache.candles("EUR_USD")) == 0
        start = T0
        for n in sizes:
            cache.upsert_candles(_bars(n, start))
            start += timedelta(minutes=n)
            got = cache.candles("EUR_USD")
            cache.flush()  # newer bars are written behind
            assert_same_bars(got, sql.candles("EUR_USD"))
        since = None if lo < 0 else T0 + timedelta(minutes=lo)
        until = None if hi < 0 else T0 + timedelta(minutes=hi)
        assert_same_bars(
            cache.candles("EUR_USD", since=since, until=until),
            sql.candles("EUR_USD", since=since, until=until),
        )
        sql.close()


def _bars(n: int, start: datetime) -> Candles:
    i = np.arange(n, dtype=np.float64)
    mid = 1.16 + 0.0001 * np.sin(i + start.minute)
    return Candles(
        instrument="EUR_USD",
        timeframe_s=60,
        time_us=int(start.timestamp()) * 1_000_000 + np.arange(n, dtype=np.int64) * 60_000_000,
        open=mid,
        high=mid + 0.0002,
        low=mid - 0.0002,
        close=mid + 0.00005,
        volume=i % 7,
        source="test",
        spread_pips=0.5 + (i % 8) / 10,
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
