"""The one learner lifecycle: verdict -> action, frozen baselines, deadlines, pause, arms."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.core.judge import VersionTimeline
from autolearn.core.lifecycle import (
    FamilyState,
    FlightSettings,
    OnInconclusive,
    judge_in_flight,
    split_of,
    start_flight,
)
from autolearn.core.model import Trade
from autolearn.testing import make_trade

T0 = datetime(2025, 3, 3, tzinfo=UTC)
K = "k"
LKG, CAND = "vL", "vC"
LAYERS = {LKG: {K: 1.0}, CAND: {K: 2.0}}


def _flying(settings: FlightSettings, concurrent: bool = True) -> FamilyState:
    state = FamilyState(lkg_version=LKG, lkg_values={K: 1.0})
    flying = start_flight(state, {K: 2.0}, T0, settings, split_id="t/f/0" if concurrent else "")
    assert flying.in_flight is not None
    from dataclasses import replace

    return replace(flying, in_flight=replace(flying.in_flight, version=CAND))


def _trades(rng: random.Random, n: int, version: str, mean: float, start: datetime) -> list[Trade]:
    out = []
    for i in range(n):
        entry = start + timedelta(minutes=3 * i + rng.random())
        out.append(
            make_trade(
                close_at=entry + timedelta(minutes=1),
                entry_at=entry,
                pl_pips=round(rng.gauss(mean, 5.0), 3),
                config_version=version,
            )
        )
    return out


def _judge(state: FamilyState, trades: list[Trade], settings: FlightSettings, now: datetime):
    return judge_in_flight(
        state,
        trades,
        {K: 1.0},
        {K: 2.0},
        LAYERS,
        VersionTimeline((), CAND),
        now,
        settings,
    )


def test_harm_rolls_back_to_the_lkg_with_a_cooldown() -> None:
    """A candidate 1 sd worse: rollback to the LKG values, cooldown set, flight over."""
    rng = random.Random(1)
    s = FlightSettings()
    trades = _trades(rng, 120, CAND, -5.0, T0) + _trades(rng, 240, LKG, 0.0, T0)
    result = _judge(_flying(s), trades, s, T0 + timedelta(days=1))
    assert (result.action, result.rollback, result.target_version) == ("rollback", {K: 1.0}, LKG)
    assert result.state.in_flight is None and result.state.cooldown_until is not None
    assert result.verdict is not None and result.verdict["baseline_mode"] == "concurrent"


def test_only_trades_opened_since_the_start_count_for_a_concurrent_baseline() -> None:
    """LKG trades from before the flight are not its concurrent baseline (same hours only)."""
    rng = random.Random(2)
    s = FlightSettings()
    before = _trades(rng, 300, LKG, 3.0, T0 - timedelta(days=2))
    during = _trades(rng, 40, CAND, 0.0, T0) + _trades(rng, 90, LKG, 0.0, T0)
    result = _judge(_flying(s), before + during, s, T0 + timedelta(days=1))
    assert result.verdict is not None and result.verdict["n_baseline"] == 90


def test_no_concurrent_baseline_falls_back_to_a_fixed_before_after_window() -> None:
    """A bot passing no unit id: the LKG trades of the 7 days before the start, and it says so."""
    rng = random.Random(3)
    s = FlightSettings()
    old = _trades(rng, 50, LKG, 0.0, T0 - timedelta(days=9))  # outside the window
    before = _trades(rng, 80, LKG, 0.0, T0 - timedelta(days=1))
    during = _trades(rng, 60, CAND, 0.0, T0)
    result = _judge(_flying(s), old + before + during, s, T0 + timedelta(days=1))
    assert result.verdict is not None
    assert (result.verdict["baseline_mode"], result.verdict["n_baseline"]) == ("before_after", 80)


def test_undecided_at_the_deadline_reverts_or_pauses_as_configured() -> None:
    """No effect, deadline reached: revert (default) or pause (keeps the flight, once stamped)."""
    rng = random.Random(4)
    trades = _trades(rng, 60, CAND, 0.0, T0) + _trades(rng, 140, LKG, 0.0, T0)
    revert = FlightSettings(deadline_trades=50)
    result = _judge(_flying(revert), trades, revert, T0 + timedelta(days=1))
    assert result.action == "revert" and result.rollback == {K: 1.0}
    assert result.code == "revert:deadline_undecided"
    pause = FlightSettings(deadline_trades=50, on_inconclusive=OnInconclusive.PAUSE)
    paused = _judge(_flying(pause), trades, pause, T0 + timedelta(days=1))
    assert paused.action == "pause" and paused.rollback == {}
    assert paused.state.in_flight is not None
    stamp = paused.state.in_flight.paused_at
    again = _judge(paused.state, trades, pause, T0 + timedelta(days=2))
    assert again.state.in_flight is not None and again.state.in_flight.paused_at == stamp


def test_a_quiet_week_does_not_end_a_flight_but_max_age_does() -> None:
    """Deadlines count candidate trades; only the long max_age backstop counts time."""
    rng = random.Random(5)
    s = FlightSettings()
    trades = _trades(rng, 40, CAND, 0.0, T0) + _trades(rng, 90, LKG, 0.0, T0)
    assert _judge(_flying(s), trades, s, T0 + timedelta(days=7)).action == "hold"
    assert _judge(_flying(s), trades, s, T0 + s.max_age).action == "revert"


def test_split_of_serves_only_the_changed_knobs_of_the_lkg() -> None:
    """The baseline arm restores exactly the family's changed knobs."""
    s = FlightSettings()
    state = FamilyState(lkg_version=LKG, lkg_values={K: 1.0, "other": 5})
    flying = start_flight(state, {K: 2.0, "other": 5}, T0, s, split_id="tuner/f/0")
    split = split_of(flying.in_flight, "tuner", "f")
    assert split is not None and split.baseline == {K: 1.0} and split.share == 0.3
    plain = start_flight(state, {K: 2.0, "other": 5}, T0, FlightSettings(), split_id="")
    assert split_of(plain.in_flight, "tuner", "f") is None


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), harm=st.floats(0.5, 3.0))
def test_a_harmful_candidate_is_never_promoted(seed: int, harm: float) -> None:
    """Whatever the sample, a candidate drawn worse than its baseline is never promoted."""
    rng = random.Random(seed)
    s = FlightSettings()
    trades = _trades(rng, 200, CAND, -harm, T0) + _trades(rng, 450, LKG, 0.0, T0)
    result = _judge(_flying(s), trades, s, T0 + timedelta(days=1))
    assert result.action != "promote"
