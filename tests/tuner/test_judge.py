"""The shared judge: three-valued verdicts, hard limits, attribution by pinned version or time."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.core.judge import (
    HardLimits,
    JudgeParams,
    Outcome,
    VersionTimeline,
    check_hard_limits,
    judge,
    split_by_arm,
)
from autolearn.core.model import Side, Trade

P = JudgeParams(band=1.0, alpha=0.05, mixture_scale=0.3, min_candidate=30, min_baseline=30)


def _sample(rng: random.Random, mean: float, n: int, sd: float = 2.0) -> list[float]:
    return [rng.gauss(mean, sd) for _ in range(n)]


def test_clearly_worse_candidate_fails() -> None:
    """A candidate 2 sd worse than a 200-trade baseline fails with a confident interval."""
    rng = random.Random(1)
    v = judge(_sample(rng, -4.0, 60), _sample(rng, 0.0, 200), P)
    assert v.outcome is Outcome.FAIL
    assert v.upper < -P.band
    assert v.trades_needed == 0


def test_equal_candidate_passes_as_non_inferior() -> None:
    """A candidate with the same distribution passes once the interval is inside the band."""
    rng = random.Random(2)
    v = judge(_sample(rng, 0.0, 400), _sample(rng, 0.0, 400), P)
    assert v.outcome is Outcome.PASS
    assert v.lower > -P.band


def test_small_samples_are_inconclusive_with_trades_needed() -> None:
    """Below the minimum sample a verdict is never pass/fail, and says how many trades remain."""
    rng = random.Random(3)
    v = judge(_sample(rng, -5.0, 10), _sample(rng, 0.0, 200), P)
    assert v.outcome is Outcome.INCONCLUSIVE
    assert v.trades_needed is not None and v.trades_needed >= P.min_candidate - 10


def test_thin_baseline_never_decides() -> None:
    """Without a baseline the judge cannot compare: inconclusive, not 'bad'."""
    v = judge([1.0, -1.0] * 50, [0.5] * 5, P)
    assert (v.outcome, v.reason) == (Outcome.INCONCLUSIVE, "baseline_too_small")


def test_trades_needed_is_enough_when_the_estimate_holds() -> None:
    """Adding the estimated number of trades with the same moments yields a decision."""
    rng = random.Random(4)
    base = _sample(rng, 0.0, 300)
    cand = _sample(rng, -1.7, 31)
    v = judge(cand, base, P)
    assert v.outcome is Outcome.INCONCLUSIVE and v.trades_needed
    extra = (cand * (v.trades_needed // len(cand) + 2))[: len(cand) + v.trades_needed]
    assert judge(extra, base, P).outcome is Outcome.FAIL


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    shift=st.floats(0.1, 5.0),
)
def test_worse_candidate_never_turns_a_fail_into_a_pass(seed: int, shift: float) -> None:
    """Shifting every candidate trade down never improves the verdict (monotone judge)."""
    rng = random.Random(seed)
    base = _sample(rng, 0.0, 100)
    cand = _sample(rng, 0.0, 60)
    rank = {Outcome.FAIL: 0, Outcome.INCONCLUSIVE: 1, Outcome.PASS: 2}
    before = judge(cand, base, P)
    after = judge([x - shift for x in cand], base, P)
    assert rank[after.outcome] <= rank[before.outcome]
    assert judge(cand, base, P) == before  # deterministic


def test_false_alarm_and_detection_rates_under_continuous_monitoring() -> None:
    """Peeking every 5 trades, an equal candidate almost never fails; a 1-sd-worse one is caught."""

    def first_decision(delta: float, seed: int) -> tuple[Outcome, int]:
        rng = random.Random(seed)
        base = _sample(rng, 0.3, 150)
        cand: list[float] = []
        for i in range(400):
            cand.append(rng.gauss(0.3 + delta, 2.0))
            if i % 5 == 4:
                v = judge(cand, base, P)
                if v.outcome is not Outcome.INCONCLUSIVE:
                    return v.outcome, i + 1
        return Outcome.INCONCLUSIVE, 400

    seeds = range(100)
    null = [first_decision(0.0, s) for s in seeds]
    bad = [first_decision(-2.0, s) for s in seeds]
    false_alarm = sum(o is Outcome.FAIL for o, _ in null) / len(null)
    detected = [n for o, n in bad if o is Outcome.FAIL]
    print(
        f"\n[judge] equal candidate: false-alarm rate {false_alarm:.1%}, pass rate "
        f"{sum(o is Outcome.PASS for o, _ in null) / len(null):.0%}; 1-sd-worse: detected "
        f"{len(detected) / len(bad):.0%}, median delay "
        f"{sorted(detected)[len(detected) // 2]} trades"
    )
    assert false_alarm <= 0.05  # alpha = 0.05 must hold under peeking
    assert len(detected) / len(bad) >= 0.9


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ([-100.0] * 4, "hard_limit_drawdown"),
        ([1.0] + [-0.1] * 10, "hard_limit_loss_streak"),
    ],
)
def test_hard_limits_fail_at_once(values: list[float], reason: str) -> None:
    """A drawdown or loss streak past its limit fails the candidate without statistics."""
    v = check_hard_limits(values, HardLimits(max_drawdown_account=300.0, max_loss_streak=10))
    assert v is not None and (v.outcome, v.reason) == (Outcome.FAIL, reason)


def test_hard_limits_quiet_within_limits() -> None:
    """Within the limits there is no hard verdict."""
    assert check_hard_limits([-10.0, 20.0, -5.0], HardLimits()) is None


def _trade(i: int, entry: datetime, version: str) -> Trade:
    return Trade(
        broker_trade_id=str(i),
        close_tx_id=str(i),
        instrument="USD_JPY",
        pocket="micro",
        strategy="S",
        side=Side.LONG,
        units=1,
        entry_price=1.0,
        close_price=1.0,
        entry_at=entry,
        close_at=entry + timedelta(hours=2),
        pl_pips=0.0,
        pl_account=0.0,
        config_version=version,
    )


def test_attribution_uses_pinned_version_then_entry_time() -> None:
    """A pinned version wins; a legacy trade maps by entry time (not close time) on the timeline."""
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    timeline = VersionTimeline.from_changes([(t0 + timedelta(hours=1), "vA", "vB")])
    trades = [
        _trade(1, t0, ""),  # opened before the change, closed after: still vA
        _trade(2, t0 + timedelta(hours=2), ""),  # opened after: vB
        _trade(3, t0, "vB"),  # pinned
        _trade(4, t0, "vZ"),  # unknown version
    ]
    arms, unattributed = split_by_arm(trades, {"vA": "baseline", "vB": "candidate"}.get, timeline)
    assert [t.broker_trade_id for t in arms["baseline"]] == ["1"]
    assert [t.broker_trade_id for t in arms["candidate"]] == ["2", "3"]
    assert unattributed == 1
