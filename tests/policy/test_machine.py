"""The policy state machine: block on confident losses, hysteresis, expiry, shadow recovery."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.policy.config import PolicyConfig
from autolearn.policy.machine import Evidence, ScopeState, Status, StepCode, step

NOW = datetime(2025, 10, 23, 3, 0, tzinfo=UTC)
CFG = PolicyConfig()
NONE = Evidence.of([], CFG.confidence)


def ev(values: list[float]) -> Evidence:
    return Evidence.of(values, CFG.confidence)


LOSING = [-2.0, -1.5, -3.0, 0.5, -2.5, -1.0, -2.0, -1.8, 0.4, -2.2, -1.6, -2.4]
WINNING = [2.0, 1.5, -0.5, 1.2, 0.8, 2.2, 1.1, -0.3, 1.6, 0.9, 1.4, 1.0]


class TestActive:
    def test_confident_losses_block_with_an_end_time(self) -> None:
        """A scope whose expectancy interval is below zero is blocked until now + block_for."""
        state, code, detail = step(ScopeState(), ev(LOSING), NONE, CFG, NOW)
        assert state.status is Status.BLOCKED and code is StepCode.BLOCK_NEGATIVE
        assert state.until == NOW + CFG.block_for and state.since == NOW
        assert state.size_mult == 0.0 and state.strikes == 1
        assert "n=12" in detail and "upper" in detail

    def test_too_few_trades_never_block(self) -> None:
        """Fewer than min_trades losing trades are insufficient evidence, not a block."""
        state, code, _ = step(ScopeState(), ev(LOSING[:11]), NONE, CFG, NOW)
        assert state.status is Status.ACTIVE and code is StepCode.INSUFFICIENT

    def test_uncertain_losses_do_not_block(self) -> None:
        """A negative mean whose interval still reaches above zero does not block."""
        noisy = [-5.0, 4.0, -6.0, 5.0, -4.0, 3.0, -5.0, 4.5, -3.0, 2.0, -4.0, 3.5]
        assert sum(noisy) < 0
        state, code, _ = step(ScopeState(), ev(noisy), NONE, CFG, NOW)
        assert state.status is Status.ACTIVE and code is StepCode.OK


class TestBlocked:
    blocked = ScopeState(
        status=Status.BLOCKED, since=NOW, until=NOW + timedelta(hours=12), size_mult=0.0, strikes=1
    )

    def test_stays_blocked_until_expiry(self) -> None:
        """Without shadow evidence the block holds until its end time."""
        state, code, _ = step(self.blocked, NONE, NONE, CFG, NOW + timedelta(hours=11))
        assert state == self.blocked and code is StepCode.STILL_BLOCKED

    def test_expiry_moves_to_probation_at_reduced_size(self) -> None:
        """At its end time a block lifts into probation at the probation size (never sticky)."""
        later = NOW + timedelta(hours=12)
        state, code, _ = step(self.blocked, NONE, NONE, CFG, later)
        assert state.status is Status.PROBATION and code is StepCode.BLOCK_EXPIRED
        assert state.size_mult == CFG.probation_size and state.since == later
        assert state.strikes == 1

    def test_good_shadow_signals_unblock_early(self) -> None:
        """Enough positive shadow outcomes move a blocked scope to probation before expiry."""
        state, code, _ = step(self.blocked, NONE, ev([1.0] * 8), CFG, NOW + timedelta(hours=1))
        assert state.status is Status.PROBATION and code is StepCode.SHADOW_RECOVERED

    def test_bad_shadow_signals_extend_the_block(self) -> None:
        """Shadow outcomes still confidently negative keep the block past its planned end."""
        at = NOW + timedelta(hours=12)
        state, code, _ = step(self.blocked, NONE, ev([-1.0, -1.2, -0.8, -1.1] * 2), CFG, at)
        assert state.status is Status.BLOCKED and code is StepCode.SHADOW_STILL_BAD
        assert state.until == at + CFG.block_for

    def test_shadow_between_thresholds_changes_nothing(self) -> None:
        """Shadow evidence inside the hysteresis band neither unblocks nor extends."""
        flat = ev([0.1, -0.1] * 4)
        state, code, _ = step(self.blocked, NONE, flat, CFG, NOW + timedelta(hours=1))
        assert state == self.blocked and code is StepCode.STILL_BLOCKED


class TestProbation:
    probation = ScopeState(status=Status.PROBATION, since=NOW, size_mult=0.5, strikes=1)

    def test_good_trades_promote_to_active(self) -> None:
        """Enough probation trades with mean >= unblock_above return the scope to active."""
        state, code, _ = step(self.probation, ev(WINNING[:10]), NONE, CFG, NOW)
        assert state.status is Status.ACTIVE and code is StepCode.PROBATION_PASSED
        assert state.size_mult == 1.0 and state.strikes == 0

    def test_bad_trades_block_again_for_longer(self) -> None:
        """Confident losses in probation re-block with a backed-off duration."""
        state, code, _ = step(self.probation, ev(LOSING[:6]), NONE, CFG, NOW)
        assert state.status is Status.BLOCKED and code is StepCode.PROBATION_FAILED
        assert state.until == NOW + CFG.block_for * CFG.block_backoff and state.strikes == 2

    def test_loss_budget_ends_probation(self) -> None:
        """A single large probation loss beyond the budget re-blocks."""
        state, code, _ = step(self.probation, ev([-25.0]), NONE, CFG, NOW)
        assert state.status is Status.BLOCKED and code is StepCode.PROBATION_LOSS_BUDGET

    def test_mediocre_trades_stay_in_probation(self) -> None:
        """A mean inside the hysteresis band keeps probation (no flapping to active)."""
        state, code, _ = step(self.probation, ev([0.2, -0.1] * 6), NONE, CFG, NOW)
        assert state.status is Status.PROBATION and code is StepCode.PROBATION_PENDING

    def test_block_duration_is_capped(self) -> None:
        """Backoff never exceeds max_block."""
        many = replace(self.probation, strikes=20)
        state, _, _ = step(many, ev(LOSING[:6]), NONE, CFG, NOW)
        assert state.until == NOW + CFG.max_block

    def test_many_strikes_block_for_max_block_without_overflow(self) -> None:
        """A scope failing probation a 32nd time is blocked for max_block (it used to overflow)."""
        bad = ev([-3.0, -2.5, -4.0, -3.2, -2.8, -3.1])
        state, code, _ = step(replace(self.probation, strikes=31), bad, NONE, CFG, NOW)
        assert state.status is Status.BLOCKED and code is StepCode.PROBATION_FAILED
        assert state.until == NOW + CFG.max_block

    def test_strikes_stop_counting_once_blocks_last_max_block(self) -> None:
        """Strikes stop at the first one that reaches max_block, so forgiveness stays quick."""
        # Defaults: 12 h doubling reaches 7 d at the 5th strike (12 h * 2**4 = 8 d > 7 d).
        state, _, _ = step(replace(self.probation, strikes=1000), ev([-25.0]), NONE, CFG, NOW)
        assert state.strikes == 5 and state.until == NOW + CFG.max_block
        for _ in range(2):  # two passed probations take two strikes off, not 2 of 1000
            state, code, _ = step(
                replace(state, status=Status.PROBATION), ev(WINNING[:10]), NONE, CFG, NOW
            )
            assert code is StepCode.PROBATION_PASSED
        reblocked, _, _ = step(replace(state, status=Status.PROBATION), ev([-25.0]), NONE, CFG, NOW)
        assert reblocked.strikes == 4 and reblocked.until == NOW + timedelta(days=4)  # 12 h * 2**3


@settings(max_examples=200, deadline=None)
@given(
    strikes=st.integers(0, 10**9),
    block_hours=st.floats(0.01, 48),
    extra_hours=st.floats(0, 10**5),
    backoff=st.floats(1, 1e6, allow_nan=False, allow_infinity=False),
)
def test_block_duration_is_monotone_and_bounded_for_any_strikes(
    strikes: int, block_hours: float, extra_hours: float, backoff: float
) -> None:
    """Any strike count blocks for between block_for and max_block, never less for more strikes."""
    cfg = replace(
        CFG,
        block_for=timedelta(hours=block_hours),
        max_block=timedelta(hours=block_hours + extra_hours),
        block_backoff=backoff,
    )
    start = ScopeState(status=Status.PROBATION, since=NOW, size_mult=0.5, strikes=strikes)
    one, _, _ = step(start, ev([-25.0]), NONE, cfg, NOW)
    two, _, _ = step(replace(start, strikes=strikes + 1), ev([-25.0]), NONE, cfg, NOW)
    assert one.until is not None and two.until is not None
    assert cfg.block_for <= one.until - NOW <= cfg.max_block
    assert one.until <= two.until
    assert 1 <= one.strikes <= strikes + 1


def test_state_round_trips_through_json() -> None:
    """A scope state survives its JSON form unchanged."""
    state = ScopeState(
        status=Status.BLOCKED,
        reason="x",
        since=NOW,
        until=NOW + timedelta(hours=1),
        size_mult=0.0,
        strikes=3,
    )
    assert ScopeState.from_json(state.to_json()) == state


_RESTRICT = {Status.ACTIVE: 0, Status.PROBATION: 1, Status.BLOCKED: 2}
values = st.lists(st.floats(-20, 20, allow_nan=False), min_size=0, max_size=40)
statuses = st.sampled_from(list(Status))


def _state(status: Status) -> ScopeState:
    return ScopeState(
        status=status,
        since=NOW - timedelta(hours=1),
        until=NOW + timedelta(hours=1) if status is Status.BLOCKED else None,
        size_mult={Status.ACTIVE: 1.0, Status.PROBATION: 0.5, Status.BLOCKED: 0.0}[status],
    )


@settings(max_examples=150, deadline=None)
@given(statuses, values, values, st.floats(0.0, 10.0))
def test_uniformly_worse_outcomes_never_loosen(
    status: Status, trades: list[float], shadow: list[float], shift: float
) -> None:
    """Shifting every outcome down never yields a less restrictive next state."""
    start = _state(status)
    good, _, _ = step(start, ev(trades), ev(shadow), CFG, NOW)
    bad, _, _ = step(
        start, ev([v - shift for v in trades]), ev([v - shift for v in shadow]), CFG, NOW
    )
    assert _RESTRICT[bad.status] >= _RESTRICT[good.status]


@settings(max_examples=150, deadline=None)
@given(statuses, values, values, st.floats(-2, 2), st.floats(0, 3))
def test_stricter_block_threshold_never_loosens(
    status: Status, trades: list[float], shadow: list[float], block_below: float, extra: float
) -> None:
    """Raising block_below (keeping the hysteresis band) never yields a less restrictive state."""
    start = _state(status)
    lax = replace(
        CFG,
        block_below=block_below,
        unblock_above=block_below + 0.5,
        shadow_unblock_above_pips=block_below + 0.5,
    )
    strict = replace(
        lax,
        block_below=block_below + extra,
        unblock_above=block_below + extra + 0.5,
        shadow_unblock_above_pips=block_below + extra + 0.5,
    )
    a, _, _ = step(start, ev(trades), ev(shadow), lax, NOW)
    b, _, _ = step(start, ev(trades), ev(shadow), strict, NOW)
    assert _RESTRICT[b.status] >= _RESTRICT[a.status]


@settings(max_examples=100, deadline=None)
@given(values)
def test_same_evidence_twice_does_not_flap(trades: list[float]) -> None:
    """Stepping again on the same evidence at the same time never reverses a transition."""
    first, _, _ = step(ScopeState(), ev(trades), NONE, CFG, NOW)
    second, _, _ = step(first, ev(trades), NONE, CFG, NOW)
    assert second.status is first.status
