"""``Aggregates.ingest_committed``: trades in commit order, whatever their close times, give the
state the close-order feed gives; re-reads count nothing twice; corrections replace."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.core.model import Side, Trade
from autolearn.gates.aggregates import Aggregates
from autolearn.gates.config import GatesConfig
from autolearn.ledger import CommitBatch, CommittedTrade
from autolearn.testing import make_trade

T0 = datetime(2025, 10, 20, 0, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)


def _trades(pls: list[float]) -> list[Trade]:
    """Trades a minute apart over two pockets, three strategies and both sides."""
    return [
        make_trade(
            close_at=T0 + timedelta(minutes=i),
            pl_pips=pl,
            broker_trade_id=f"t{i:04d}",
            close_tx_id=str(i),
            pocket="micro" if i % 4 else "macro",
            strategy=f"S{i % 3}",
            side=Side.LONG if i % 5 else Side.SHORT,
        )
        for i, pl in enumerate(pls)
    ]


def _state(agg: Aggregates) -> tuple[object, ...]:
    """Everything a gate reads: windows, stage book, clusters, last closes."""
    windows = {
        key: agg.window(key[0], key[1], timedelta(days=3), NOW) for key in sorted(agg.series)
    }
    clusters = {p: agg.cluster(p, T0 + timedelta(minutes=30)) for p in ("micro", "macro")}
    return (
        windows,
        dict(agg.stage.sides),
        dict(agg.stage.strategies),
        clusters,
        dict(agg.last_close),
        agg.trades_seen,
    )


def _committed(trades: list[Trade], start: int = 1) -> list[CommittedTrade]:
    return [CommittedTrade(seq, t) for seq, t in enumerate(trades, start=start)]


@settings(max_examples=40, deadline=None)
@given(
    pls=st.lists(st.sampled_from([-8.0, -3.0, -1.0, 0.0, 2.0, 5.0]), min_size=1, max_size=60),
    seed=st.integers(0, 2**32 - 1),
    batches=st.integers(1, 6),
)
def test_any_commit_order_gives_the_close_order_state(
    pls: list[float], seed: int, batches: int
) -> None:
    """The same trades committed in any order and read in any batches leave the windows,
    streaks, cooldowns, clusters and last closes of a reader fed in close order."""
    trades = _trades(pls)
    in_order = Aggregates(GatesConfig())
    in_order.ingest(trades)
    shuffled = trades[:]
    random.Random(seed).shuffle(shuffled)
    rows = _committed(shuffled)
    agg = Aggregates(GatesConfig())
    size = max(1, len(rows) // batches)
    for lo in range(0, len(rows), size):
        agg.ingest_committed(rows[lo : lo + size])
    assert _state(agg) == _state(in_order)
    assert agg.commit_seq == len(rows)


def test_an_overlapping_re_read_counts_nothing_twice() -> None:
    """Rows read again (the overlap before the last ``seq``) are skipped by key."""
    rows = _committed(_trades([1.0, -2.0, 3.0, -4.0]))
    agg = Aggregates(GatesConfig())
    assert agg.ingest_committed(rows[:3]) == 3
    assert agg.ingest_committed(rows[1:]) == 1
    assert agg.ingest_committed(rows) == 0
    assert agg.trades_seen == 4
    assert sum(len(s.trades) for s in agg.series.values()) == 4


def test_a_later_version_replaces_the_counted_one() -> None:
    """A correction (same key, higher ``seq``) replaces the trade in every view, counted once;
    an older version arriving late is ignored."""
    trades = _trades([5.0, 5.0, 5.0])
    agg = Aggregates(GatesConfig())
    agg.ingest_committed(_committed(trades))
    loss = replace(trades[1], pl_pips=-9.0, close_price=149.91)
    agg.ingest_committed([CommittedTrade(4, loss)])
    expected = Aggregates(GatesConfig())
    expected.ingest([trades[0], loss, trades[2]])
    assert _state(agg)[:5] == _state(expected)[:5]
    assert (agg.trades_seen, agg.corrected) == (3, 1)
    agg.ingest_committed([CommittedTrade(2, trades[1])])  # the first version, re-read
    assert _state(agg)[:5] == _state(expected)[:5]


def test_a_corrected_last_close_falls_back_to_the_newest_other() -> None:
    """When the newest close of a (strategy, side) is corrected to an earlier time, the
    re-entry gate's last close becomes whichever is now newest."""
    a, b = (
        make_trade(close_at=T0 + timedelta(minutes=m), pl_pips=1.0, broker_trade_id=i)
        for m, i in ((1, "a"), (2, "b"))
    )
    agg = Aggregates(GatesConfig())
    agg.ingest_committed(_committed([a, b]))
    base = (a.strategy.split("-")[0], a.side, a.instrument)
    assert agg.last_close[base].close_at == b.close_at
    earlier = replace(b, close_at=T0, entry_at=T0 - timedelta(minutes=5))
    agg.ingest_committed([CommittedTrade(3, earlier)])
    assert agg.last_close[base].close_at == a.close_at


def test_future_rows_wait_and_old_rows_are_not_kept() -> None:
    """A row closing after ``not_after`` is held and taken once due; a new row older than
    ``not_before`` is not kept (it is outside every window)."""
    soon, old = _trades([1.0, 2.0])
    soon = replace(soon, close_at=NOW + timedelta(hours=1), entry_at=NOW)
    old = replace(old, close_at=T0 - timedelta(days=30), entry_at=T0 - timedelta(days=31))
    agg = Aggregates(GatesConfig())
    rows = _committed([soon, old])
    assert agg.ingest_committed(rows, not_after=NOW, not_before=T0) == 0
    assert (agg.future_skipped, agg.commit_seq) == (1, 2)
    assert agg.ingest_committed([], not_after=NOW + timedelta(hours=2), not_before=T0) == 1
    assert agg.trades_seen == 1
    assert [t.broker_trade_id for s in agg.series.values() for t in s.trades] == [
        soon.broker_trade_id
    ]


@pytest.mark.parametrize("late_minutes", [-90, 0, 45])
def test_a_late_trade_reaches_the_right_window(late_minutes: int) -> None:
    """A trade committed last but closing earlier (a lagging clock, a backfill) lands in the
    windows its close time belongs to, and the cached stats change with it."""
    trades = _trades([2.0] * 10)
    agg = Aggregates(GatesConfig())
    agg.ingest_committed(_committed(trades))
    key = (trades[0].pocket, trades[0].strategy)
    lookback, at = timedelta(hours=1), T0 + timedelta(minutes=20)
    before = agg.window(*key, lookback, at)
    late = make_trade(
        close_at=T0 + timedelta(minutes=late_minutes),
        pl_pips=-50.0,
        broker_trade_id="late",
        pocket=key[0],
        strategy=key[1],
    )
    agg.ingest_committed([CommittedTrade(11, late)])
    after = agg.window(*key, lookback, at)
    inside = at - lookback <= late.close_at <= at
    assert (after.stats.n == before.stats.n + 1) is inside
    assert (after != before) is inside


class _RacyLedger:
    """A ``CommitOrdered`` ledger whose rows become visible when the test says (a writer that
    bypassed the commit lock: ``seq`` 2 commits after 3 was read)."""

    def __init__(self, rows: list[CommittedTrade]) -> None:
        self.visible: list[CommittedTrade] = rows
        self.reads: list[int] = []
        self.ident = "ledger-a"

    def commit_head(self) -> int:
        return max((r.seq for r in self.visible), default=0)

    def read_committed(
        self, *, after: int = 0, closed_since: datetime | None = None
    ) -> CommitBatch:
        self.reads.append(after)
        rows = sorted((r for r in self.visible if r.seq > after), key=lambda r: r.seq)
        return CommitBatch(self.commit_head(), rows, self.ident)

    def close(self) -> None:
        pass


def test_a_row_committed_below_a_seq_already_read_is_caught_by_the_sweep() -> None:
    """Refreshes resume after the highest ``seq``; the periodic sweep re-reads one sweep back,
    so a row committed late below it is counted, once, however often it is re-read."""
    from autolearn.gates import Gates
    from autolearn.gates.api import COMMIT_SWEEP_S

    one, two, three, four = _committed(_trades([1.0, -2.0, 3.0, 4.0]))
    ledger = _RacyLedger([one])
    tick = [0.0]
    gates = Gates(ledger=ledger, config=GatesConfig(refresh_s=0.0), clock=lambda: tick[0])  # type: ignore[arg-type]
    assert gates.refresh(NOW) == 1  # start-up
    ledger.visible = [one, three]
    assert gates.refresh(NOW) == 1
    ledger.visible = [one, two, three]  # 2 commits after 3 was read
    assert gates.refresh(NOW) == 0  # resumed after 3: not yet
    tick[0] += COMMIT_SWEEP_S
    assert gates.refresh(NOW) == 1  # the sweep
    ledger.visible = [one, two, three, four]
    for _ in range(3):
        tick[0] += COMMIT_SWEEP_S
        gates.refresh(NOW)
    assert gates.aggregates.trades_seen == 4
    assert sorted(
        t.broker_trade_id for s in gates.aggregates.series.values() for t in s.trades
    ) == [r.trade.broker_trade_id for r in (one, two, three, four)]
    assert ledger.reads[:3] == [0, 1, 3]  # start-up, then after the head


@pytest.mark.parametrize("rebuilt", ["restored", "recreated"])
def test_a_rebuilt_ledger_is_read_again(rebuilt: str) -> None:
    """A head below the highest ``seq`` read (restored from a backup) or another ledger
    identity (recreated, as many rows or more, maybe in the old file's inode) makes the gates
    read it from the start, not wait for its numbers to pass the old ones."""
    from autolearn.gates import Gates

    rows = _committed(_trades([1.0, 2.0, 3.0]))
    ledger = _RacyLedger(rows)
    gates = Gates(ledger=ledger, config=GatesConfig(refresh_s=0.0), clock=lambda: 0.0)  # type: ignore[arg-type]
    assert gates.refresh(NOW) == 3
    fresh = replace(_trades([5.0])[0], broker_trade_id="rebuilt")
    if rebuilt == "restored":
        ledger.visible = [CommittedTrade(1, fresh)]
    else:
        ledger.visible = [CommittedTrade(1, fresh), *_committed(_trades([1.0, 2.0, 3.0]), 2)]
        ledger.ident = "ledger-b"
    gates.refresh(NOW)
    kept = sorted(t.broker_trade_id for s in gates.aggregates.series.values() for t in s.trades)
    assert kept == sorted(r.trade.broker_trade_id for r in ledger.visible)
    assert gates.aggregates.trades_seen == len(ledger.visible)
