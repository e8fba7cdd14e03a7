"""Stage tracker: streak and cluster cooldowns from close times, flip guard, decay, size."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.core.model import Side, Trade
from autolearn.gates.aggregates import Aggregates
from autolearn.gates.config import GatesConfig, StageConfig
from autolearn.gates.stage import evaluate_stage

T0 = datetime(2025, 10, 22, 0, 0, tzinfo=UTC)
CFG = GatesConfig()


def verdict(
    agg: Aggregates,
    now: datetime,
    side: Side = Side.LONG,
    pocket: str = "micro",
    strategy: str = "MomentumPulse",
):
    return evaluate_stage(
        cfg=agg.config.stage,
        pocket=pocket,
        side=side,
        side_state=agg.stage.sides.get((pocket, side)),
        strategy_state=agg.stage.strategies.get((pocket, strategy)),
        cluster=agg.cluster(pocket, now),
        now=now,
    )


def losses(
    make_trade: Callable[..., Trade], start: datetime, n: int, gap_min: float = 10, **kw
) -> list[Trade]:
    return [
        make_trade(close_at=start + timedelta(minutes=gap_min * i), pl_pips=-3.0, **kw)
        for i in range(n)
    ]


def test_three_losses_cool_down_from_the_third_close(make_trade: Callable[..., Trade]) -> None:
    """Three losses in a row on micro long cool that side for 600 s from the third close."""
    agg = Aggregates(CFG)
    trades = losses(make_trade, T0, 3, gap_min=30)  # far apart: no cluster overlap in the check
    agg.ingest(trades)
    third = trades[-1].close_at
    side = agg.stage.sides[("micro", Side.LONG)]
    assert side.cooldown_until_us == int((third + timedelta(seconds=600)).timestamp() * 1e6)
    r = verdict(agg, third + timedelta(seconds=599))
    assert not r.allowed and "loss_streak_cooldown" in [x.code for x in r.reasons]
    r = verdict(agg, third + timedelta(seconds=601))
    assert "loss_streak_cooldown" not in [x.code for x in r.reasons]


def test_flip_guard_cools_the_opposite_side_shorter(make_trade: Callable[..., Trade]) -> None:
    """The opposite side gets max(90 s, half the cooldown) = 300 s from the third close."""
    agg = Aggregates(GatesConfig(stage=StageConfig(cluster_min_losses=10, strategy_loss_streak=9)))
    trades = losses(make_trade, T0, 3)
    agg.ingest(trades)
    third = trades[-1].close_at
    assert not verdict(agg, third + timedelta(seconds=299), Side.SHORT).allowed
    assert verdict(agg, third + timedelta(seconds=301), Side.SHORT).allowed
    assert not verdict(agg, third + timedelta(seconds=301), Side.LONG).allowed


def test_old_losses_loaded_at_startup_cause_no_cooldown(make_trade: Callable[..., Trade]) -> None:
    """Bug 'now-stamped cluster': losses from two days ago never cool the pocket at start-up."""
    agg = Aggregates(CFG)
    agg.ingest(losses(make_trade, T0, 6))
    now = T0 + timedelta(days=2)
    r = verdict(agg, now)
    assert r.allowed and not [x for x in r.reasons if x.blocking]


def test_cluster_cooldown_ends_at_last_loss_plus_scaled_duration(
    make_trade: Callable[..., Trade],
) -> None:
    """Two micro losses (6 pips total) within the window: 180 s x (1 + 0.3) from the last close."""
    agg = Aggregates(CFG)
    a = make_trade(close_at=T0, pl_pips=-3.0, strategy="A")
    b = make_trade(close_at=T0 + timedelta(minutes=30), pl_pips=-3.0, strategy="B", side=Side.SHORT)
    agg.ingest([a, b])
    until, count, severity = agg.cluster("micro", b.close_at + timedelta(seconds=1))
    assert count == 2 and abs(severity - 0.3) < 1e-9
    assert until == int((b.close_at + timedelta(seconds=180 * 1.3)).timestamp() * 1e6)
    assert not verdict(agg, b.close_at + timedelta(seconds=233)).allowed
    assert verdict(agg, b.close_at + timedelta(seconds=235)).allowed


def test_streak_decays_and_sizes(make_trade: Callable[..., Trade]) -> None:
    """Two losses shrink size to 0.6; every 120 min without a trade removes one from the streak."""
    agg = Aggregates(GatesConfig(stage=StageConfig(cluster_min_losses=10)))
    trades = losses(make_trade, T0, 2)
    agg.ingest(trades)
    last = trades[-1].close_at
    assert verdict(agg, last + timedelta(minutes=1)).size_multiplier == 0.6
    assert verdict(agg, last + timedelta(minutes=121)).size_multiplier == 0.75
    assert verdict(agg, last + timedelta(minutes=241)).size_multiplier == 1.0


def test_strategy_cooldown(make_trade: Callable[..., Trade]) -> None:
    """Three losses of one strategy across both sides cool that strategy only."""
    agg = Aggregates(GatesConfig(stage=StageConfig(cluster_min_losses=10, loss_streak=5)))
    trades = [
        make_trade(
            close_at=T0 + timedelta(minutes=i),
            pl_pips=-1.0,
            side=Side.LONG if i % 2 else Side.SHORT,
        )
        for i in range(3)
    ]
    agg.ingest(trades)
    now = trades[-1].close_at + timedelta(seconds=10)
    assert [x.code for x in verdict(agg, now).reasons if x.blocking] == ["strategy_cooldown"]
    assert verdict(agg, now, strategy="Other").allowed


outcomes = st.lists(
    st.tuples(
        st.floats(-10, 10, allow_nan=False), st.integers(1, 200), st.booleans(), st.booleans()
    ),
    min_size=1,
    max_size=30,
)


def _trades(
    make_trade: Callable[..., Trade], rows: list[tuple[float, int, bool, bool]]
) -> list[Trade]:
    at = T0
    out = []
    for i, (pl, gap, long, strat_a) in enumerate(rows):
        at += timedelta(minutes=gap)
        out.append(
            make_trade(
                close_at=at,
                pl_pips=pl,
                broker_trade_id=f"B{i:05d}",
                close_tx_id=f"C{i:05d}",
                side=Side.LONG if long else Side.SHORT,
                strategy="A" if strat_a else "B",
            )
        )
    return out


@settings(max_examples=150, deadline=None)
@given(outcomes, st.data(), st.integers(0, 600))
def test_worse_outcome_never_loosens(
    make_trade: Callable[..., Trade], rows, data, after_s: int
) -> None:
    """Making any one trade worse never allows what was denied, nor raises the size."""
    i = data.draw(st.integers(0, len(rows) - 1))
    worse_rows = list(rows)
    pl, gap, long, a = rows[i]
    worse_rows[i] = (pl - data.draw(st.floats(0, 10)), gap, long, a)
    good, bad = Aggregates(CFG), Aggregates(CFG)
    good.ingest(_trades(make_trade, rows))
    bad.ingest(_trades(make_trade, worse_rows))
    now = good.watermark[0] + timedelta(seconds=after_s)
    for side in Side:
        for strategy in ("A", "B"):
            g = verdict(good, now, side, strategy=strategy)
            b = verdict(bad, now, side, strategy=strategy)
            if b.allowed:
                assert g.allowed and b.size_multiplier <= g.size_multiplier


@settings(max_examples=100, deadline=None)
@given(outcomes, st.integers(1, 10))
def test_incremental_equals_batch(make_trade: Callable[..., Trade], rows, chunk: int) -> None:
    """Feeding trades in chunks (with repeats) gives the same state as one batch."""
    trades = _trades(make_trade, rows)
    batch, inc = Aggregates(CFG), Aggregates(CFG)
    batch.ingest(trades)
    for k in range(0, len(trades), chunk):
        inc.ingest(trades[max(0, k - 2) : k + chunk])  # overlapping re-delivery is ignored
    assert inc.stage.sides == batch.stage.sides
    assert inc.stage.strategies == batch.stage.strategies
    assert inc.watermark == batch.watermark and inc.trades_seen == len(trades)
