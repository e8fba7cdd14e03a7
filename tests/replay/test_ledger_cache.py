"""The replay's ledger cache answers every read exactly like the SQL ledger it writes through."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autolearn.core.model import ShadowSignal, Trade
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
    """trades(), trades_after(), shadow_signals(), last_close_at() match SQL after upserts."""
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
        assert cache.last_close_at() == sql.last_close_at()
        assert cache.count_trades() == sql.count_trades()
        # a fresh cache over the same file starts from what SQL holds
        assert CachedLedger(sql).trades() == everything
        sql.close()
