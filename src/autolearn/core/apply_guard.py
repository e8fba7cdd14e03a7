"""The apply guard: which requested knob changes may be applied, each with a reason code.

Every writer (tuner, policy, scalp trainer, autotune, operator) goes through this one pure
function, so ownership, bounds, grid, step, interval and daily drift are enforced in one place.
A rejected change is a value with a code, never an exception: a run records it and goes on.

Pure: no I/O, no clock (``now`` is a parameter).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from autolearn.core.knobs import KnobSpec, KnobType, KnobValue, Owner, problems_with_value
from autolearn.core.registry import Registry

__all__ = ["ApplyKind", "GuardCode", "KnobChange", "KnobDecision", "guard_changes"]


class ApplyKind(StrEnum):
    """Why values change. Rollbacks and operator actions skip the *pace* limits only."""

    APPLY = "apply"  # a mechanism's learned proposal: every limit applies
    ROLLBACK = "rollback"  # back to a recorded snapshot of the mechanism's own knobs
    OPERATOR = "operator"  # a human (rollback --to, set): any owner, still bounds and grid
    REBASE = "rebase"  # the presets changed under unchanged overrides (a deploy): no knob moves
    ARM = "arm"  # the baseline arm of a change in flight (a snapshot kind, never an apply)


class GuardCode(StrEnum):
    ADOPTED = "adopted"
    NO_CHANGE = "no_change"
    UNKNOWN_KNOB = "unknown_knob"
    NOT_OWNER = "not_owner"
    INVALID_VALUE = "invalid_value"
    STEP_TOO_LARGE = "step_too_large"
    TOO_SOON = "too_soon"
    DRIFT_LIMIT = "drift_limit"


@dataclass(frozen=True, slots=True, kw_only=True)
class KnobChange:
    """One past change of a knob (kept for the interval and drift limits)."""

    at: datetime
    before: KnobValue
    after: KnobValue


@dataclass(frozen=True, slots=True, kw_only=True)
class KnobDecision:
    """The guard's verdict on one requested change."""

    knob: str
    before: KnobValue | None
    requested: object
    code: GuardCode
    detail: str

    @property
    def adopted(self) -> bool:
        return self.code is GuardCode.ADOPTED

    def to_record(self) -> dict[str, object]:
        return {
            "knob": self.knob,
            "before": self.before,
            "requested": self.requested,
            "adopted": self.adopted,
            "code": self.code.value,
            "detail": self.detail,
        }


def guard_changes(
    registry: Registry,
    writer: Owner | str,
    current: Mapping[str, KnobValue],
    recent_changes: Mapping[str, Sequence[KnobChange]],
    requested: Mapping[str, object],
    now: datetime,
    kind: ApplyKind = ApplyKind.APPLY,
) -> list[KnobDecision]:
    """Judge each requested change; ``current`` holds effective values (defaults filled in)."""
    return [
        _judge(
            registry, Owner(writer), current, recent_changes.get(name, ()), name, value, now, kind
        )
        for name, value in sorted(requested.items())
    ]


def _judge(
    registry: Registry,
    writer: Owner,
    current: Mapping[str, KnobValue],
    history: Sequence[KnobChange],
    name: str,
    value: object,
    now: datetime,
    kind: ApplyKind,
) -> KnobDecision:
    spec = registry.find(name)
    if spec is None:
        return KnobDecision(
            knob=name,
            before=None,
            requested=value,
            code=GuardCode.UNKNOWN_KNOB,
            detail=f"{name!r} is not in the registry {registry.source}",
        )
    before = current.get(name, spec.default)

    def verdict(code: GuardCode, detail: str) -> KnobDecision:
        return KnobDecision(knob=name, before=before, requested=value, code=code, detail=detail)

    if kind is not ApplyKind.OPERATOR and spec.owner is not writer:
        return verdict(GuardCode.NOT_OWNER, f"owned by {spec.owner.value}, not {writer.value}")
    problems = problems_with_value(spec, value)
    if problems:
        return verdict(GuardCode.INVALID_VALUE, "; ".join(problems))
    typed = _typed(spec, value)
    if typed == before and type(typed) is type(before):
        return verdict(GuardCode.NO_CHANGE, f"already {before!r}")
    if kind is ApplyKind.APPLY:
        pace = _pace_problem(spec, before, typed, history, now)
        if pace is not None:
            return verdict(*pace)
    return verdict(GuardCode.ADOPTED, f"{before!r} -> {typed!r}")


def _pace_problem(
    spec: KnobSpec,
    before: KnobValue,
    after: KnobValue,
    history: Sequence[KnobChange],
    now: datetime,
) -> tuple[GuardCode, str] | None:
    if spec.type is not KnobType.BOOL and spec.max_step is not None:
        delta = abs(float(after) - float(before))
        if delta > spec.max_step * (1 + 1e-9):
            return GuardCode.STEP_TOO_LARGE, f"|{delta:g}| > max_step {spec.max_step:g}"
    if history and spec.min_interval > timedelta(0):
        last = max(change.at for change in history)
        if now - last < spec.min_interval:
            return GuardCode.TOO_SOON, (
                f"last change {last.isoformat()} is within min_interval {spec.min_interval}"
            )
    if spec.type is not KnobType.BOOL and spec.max_drift_per_day is not None:
        day_ago = now - timedelta(days=1)
        moved = sum(abs(float(c.after) - float(c.before)) for c in history if c.at > day_ago) + abs(
            float(after) - float(before)
        )
        if moved > spec.max_drift_per_day * (1 + 1e-9):
            return GuardCode.DRIFT_LIMIT, (
                f"{moved:g} moved in 24h > max_drift_per_day {spec.max_drift_per_day:g}"
            )
    return None


def _typed(spec: KnobSpec, value: object) -> KnobValue:
    if spec.type is KnobType.BOOL:
        return bool(value)
    if spec.type is KnobType.INT:
        return int(value)  # type: ignore[call-overload,no-any-return]
    # "+ 0.0" turns -0.0 into 0.0: both are the same value and must hash to one version.
    return round(float(value), spec.decimals) + 0.0  # type: ignore[arg-type]
