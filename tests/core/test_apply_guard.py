"""The apply guard: ownership, bounds, grid, step, interval and drift, as reason codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.core.apply_guard import ApplyKind, GuardCode, KnobChange, guard_changes
from autolearn.core.knobs import KnobType, Owner, is_on_grid
from autolearn.settings import load_registry

REGISTRY = load_registry(None)
NOW = datetime(2025, 10, 23, 3, 0, tzinfo=UTC)
KNOB = "exit.lowvol.upper_bound_max_sec"  # 3.6 in [3.2, 4.8], step 0.1, max 0.2, 1h, 0.6/day


def _one(writer: Owner, value: object, *, history=None, kind=ApplyKind.APPLY, knob=KNOB):
    current = REGISTRY.defaults()
    return guard_changes(REGISTRY, writer, current, history or {}, {knob: value}, NOW, kind)[0]


class TestGuard:
    @pytest.mark.parametrize(
        ("writer", "value", "code"),
        [
            (Owner.TUNER, 3.8, GuardCode.ADOPTED),
            (Owner.TUNER, 3.6, GuardCode.NO_CHANGE),
            (Owner.POLICY, 3.7, GuardCode.NOT_OWNER),
            (Owner.TUNER, 5.0, GuardCode.INVALID_VALUE),
            (Owner.TUNER, 3.65, GuardCode.INVALID_VALUE),
            (Owner.TUNER, "3.7", GuardCode.INVALID_VALUE),
            (Owner.TUNER, float("nan"), GuardCode.INVALID_VALUE),
            (Owner.TUNER, 3.9, GuardCode.STEP_TOO_LARGE),
        ],
    )
    def test_codes(self, writer: Owner, value: object, code: GuardCode) -> None:
        """Each kind of illegal request gets its own reason code."""
        assert _one(writer, value).code is code

    def test_unknown_knob(self) -> None:
        """A knob missing from the registry cannot be written, whoever asks."""
        decision = _one(Owner.OPERATOR, 1, knob="exit.lowvol.new_idea", kind=ApplyKind.OPERATOR)
        assert decision.code is GuardCode.UNKNOWN_KNOB

    def test_min_interval(self) -> None:
        """A second change within min_interval is refused; after it, adopted."""
        recent = {KNOB: [KnobChange(at=NOW - timedelta(minutes=30), before=3.6, after=3.7)]}
        assert _one(Owner.TUNER, 3.8, history=recent).code is GuardCode.TOO_SOON
        old = {KNOB: [KnobChange(at=NOW - timedelta(hours=2), before=3.6, after=3.7)]}
        assert _one(Owner.TUNER, 3.8, history=old).code is GuardCode.ADOPTED

    def test_daily_drift(self) -> None:
        """Total movement within 24 h cannot exceed max_drift_per_day."""
        recent = {
            KNOB: [
                KnobChange(at=NOW - timedelta(hours=h), before=3.6, after=3.8) for h in (3, 6, 9)
            ]
        }
        assert _one(Owner.TUNER, 3.8, history=recent).code is GuardCode.DRIFT_LIMIT

    def test_rollback_skips_pace_not_bounds(self) -> None:
        """A rollback may jump several steps at once, but never out of bounds or ownership."""
        assert _one(Owner.TUNER, 4.4, kind=ApplyKind.ROLLBACK).code is GuardCode.ADOPTED
        assert _one(Owner.TUNER, 4.9, kind=ApplyKind.ROLLBACK).code is GuardCode.INVALID_VALUE
        assert _one(Owner.POLICY, 4.4, kind=ApplyKind.ROLLBACK).code is GuardCode.NOT_OWNER

    def test_tuned_zero_and_false_are_values(self) -> None:
        """0 and false are legal values, not 'missing'."""
        grace = "exit.lowvol.min_grace_before_scratch_ms"
        current = {**REGISTRY.defaults(), grace: 30}
        d = guard_changes(REGISTRY, Owner.TUNER, current, {}, {grace: 0}, NOW)[0]
        assert d.code is GuardCode.ADOPTED
        allow = guard_changes(
            REGISTRY, Owner.POLICY, REGISTRY.defaults(), {}, {"pockets.micro.allow_new": False}, NOW
        )[0]
        assert allow.code is GuardCode.ADOPTED


_TUNER_KNOBS = [s for s in REGISTRY.owned_by(Owner.TUNER) if s.type is not KnobType.BOOL]


@settings(max_examples=300)
@given(
    st.sampled_from(_TUNER_KNOBS),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from(list(Owner)),
)
def test_adopted_values_never_leave_limits(spec, value: float, writer: Owner) -> None:
    """Whatever is requested, an adopted value is owned, in bounds, on grid, within max_step."""
    current = REGISTRY.defaults()
    decision = guard_changes(REGISTRY, writer, current, {}, {spec.name: value}, NOW)[0]
    if decision.adopted:
        assert writer is spec.owner
        assert spec.lower <= value <= spec.upper
        assert is_on_grid(spec, value)
        assert abs(value - float(current[spec.name])) <= spec.max_step + 1e-9
