"""One knob family's change lifecycle: LKG, the change in flight, its live verdict, rollback.

Shared by the two single-family mechanisms (the scalp trainer and the autotune): bootstrap the
last-known-good (LKG) values, notice values someone else changed, judge the change in flight on
the trades *opened under* it against the trades opened under the LKG with the shared judge
(``autolearn.core.judge``: hard limits first, then the always-valid sequential test), and say
whether to promote, roll back (fail or deadline) or keep waiting.

The tuner has its own multi-family version of the same steps (``autolearn.tuner.decide``); the
rules both apply (what an external change means, how trades are attributed and judged) live in
``autolearn.core.lifecycle``. This module is the one-family form around them.

Pure: no I/O, no clock (``now`` is a parameter); a malformed stored state raises ``StateError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from autolearn.core.judge import HardLimits, JudgeParams, Outcome, VersionTimeline
from autolearn.core.knobs import KnobSpec, KnobValue, snap_to_grid, step_value
from autolearn.core.lifecycle import (
    FamilyState,
    InFlight,
    external_change,
    family_values,
    judge_flight,
)
from autolearn.core.model import Trade
from autolearn.core.timestamps import TimestampError, format_utc
from autolearn.errors import StateError

__all__ = [
    "Approach",
    "FamilyState",
    "FlightResult",
    "InFlight",
    "JudgeSettings",
    "approach",
    "family_values",
    "finalize",
    "judge_in_flight",
    "parse_state",
    "reconcile",
    "start_flight",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class JudgeSettings:
    """How a change in flight is judged and what a rollback costs."""

    judge: JudgeParams = field(default_factory=JudgeParams)
    hard_limits: HardLimits = field(default_factory=HardLimits)
    deadline: timedelta = timedelta(days=7)  # inconclusive past this reverts to the LKG
    deadline_trades: int = 400  # ... or past this many candidate trades
    cooldown: timedelta = timedelta(hours=12)  # no new proposal after a rollback


def parse_state(doc: Mapping[str, Any], source: str) -> FamilyState | None:
    """The stored state (``None`` before the first run); malformed -> ``StateError``."""
    if not doc:
        return None
    try:
        return FamilyState.from_json(doc)
    except (KeyError, TypeError, ValueError, TimestampError) as exc:
        raise StateError(
            f"{source}: malformed state ({type(exc).__name__}: {exc}); fix or move the file "
            "aside (the mechanism then bootstraps its LKG from the current values)"
        ) from exc


def reconcile(
    state: FamilyState | None,
    now_values: Mapping[str, KnobValue],
    version: str,
    writers: Mapping[str, str],
    now: datetime,
) -> tuple[FamilyState, list[str]]:
    """Bootstrap, or explain values that differ from what the state expects (with codes)."""
    if state is None:
        return FamilyState(lkg_version=version, lkg_values=dict(now_values)), ["lkg_bootstrap"]
    flight_values = state.in_flight.values if state.in_flight else None
    code = external_change(state.lkg_values, flight_values, now_values, writers)
    if code is None:
        return state, []
    if code == "in_flight_reverted_externally":
        return replace(state, in_flight=None, changed_at=now), [code]
    if code == "operator_change":
        new = replace(
            state,
            lkg_version=version,
            lkg_values=dict(now_values),
            lkg_bootstrap=False,
            in_flight=None,
            changed_at=now,
        )
        return new, [code]
    flight = InFlight(
        version=version,
        values=dict(now_values),
        baseline_version=state.lkg_version,
        baseline_values=dict(state.lkg_values),
        started_at=now,
    )
    return replace(state, in_flight=flight, changed_at=now), [code]


@dataclass(frozen=True, slots=True, kw_only=True)
class FlightResult:
    """The live verdict on the change in flight and what follows from it."""

    action: str  # none | promote | rollback | hold
    code: str
    state: FamilyState
    rollback: dict[str, KnobValue]  # values to restore (ROLLBACK apply) when action=rollback
    target_version: str | None
    verdict: dict[str, Any] | None


def judge_in_flight(
    state: FamilyState,
    trades: Sequence[Trade],
    defaults: Mapping[str, KnobValue],
    now_values: Mapping[str, KnobValue],
    version_values: Mapping[str, Mapping[str, KnobValue]],
    timeline: VersionTimeline,
    now: datetime,
    settings: JudgeSettings,
) -> FlightResult:
    """Judge ``state.in_flight`` on the relevant ``trades`` (``action`` none when idle).

    ``defaults`` are the family knobs' presets; ``version_values`` the runtime layer of each
    known version (trades under an unknown version are counted as ``unattributed``).
    """
    flight = state.in_flight
    if flight is None:
        return FlightResult(
            action="none", code="idle", state=state, rollback={}, target_version=None, verdict=None
        )
    judged = judge_flight(flight, trades, defaults, version_values, timeline, settings)
    verdict = judged.verdict
    record = verdict.to_record() | {
        "candidate_version": flight.version,
        "baseline_version": flight.baseline_version,
        "n_baseline": judged.n_baseline,
        "started_at": format_utc(flight.started_at),
        "unattributed": judged.unattributed,
    }
    if verdict.outcome is Outcome.PASS:
        promoted = replace(
            state,
            lkg_version=flight.version,
            lkg_values=dict(flight.values),
            lkg_bootstrap=False,
            in_flight=None,
        )
        return FlightResult(
            action="promote",
            code=f"promote:{verdict.reason}",
            state=promoted,
            rollback={},
            target_version=None,
            verdict=record,
        )
    past_deadline = (
        now - flight.started_at >= settings.deadline
        or verdict.n_candidate >= settings.deadline_trades
    )
    if verdict.outcome is Outcome.FAIL or past_deadline:
        code = verdict.reason if verdict.outcome is Outcome.FAIL else "deadline_revert"
        wanted = {k: v for k, v in state.lkg_values.items() if now_values.get(k) != v}
        rolled = replace(
            state, in_flight=None, changed_at=now, cooldown_until=now + settings.cooldown
        )
        return FlightResult(
            action="rollback",
            code=f"rollback:{code}" + ("" if wanted else ":lkg_equals_current"),
            state=rolled,
            rollback=wanted,
            target_version=state.lkg_version,
            verdict=record,
        )
    return FlightResult(
        action="hold",
        code=f"in_flight:{verdict.reason}",
        state=state,
        rollback={},
        target_version=None,
        verdict=record,
    )


def start_flight(state: FamilyState, values: Mapping[str, KnobValue], now: datetime) -> FamilyState:
    """The state after proposing ``values`` (the full family values) at ``now``."""
    flight = InFlight(
        version="",  # known after the apply: finalize() fills it in
        values=dict(values),
        baseline_version=state.lkg_version,
        baseline_values=dict(state.lkg_values),
        started_at=now,
    )
    return replace(state, in_flight=flight, changed_at=now)


def finalize(
    proposed: FamilyState,
    unapplied: FamilyState,
    *,
    applied: bool,
    version_after: str,
    values_after: Mapping[str, KnobValue],
) -> FamilyState:
    """The state to store once the shell knows whether (and what) the apply adopted."""
    if not applied:
        return unapplied
    flight = proposed.in_flight
    if flight is None or flight.version:
        return proposed
    values = {k: values_after.get(k, v) for k, v in flight.values.items()}
    return replace(proposed, in_flight=replace(flight, version=version_after, values=values))


@dataclass(frozen=True, slots=True, kw_only=True)
class Approach:
    """One bounded step toward a target: ``proposed`` is at most ``max_step`` from ``current``."""

    target: KnobValue  # the target snapped to the grid and bounds
    proposed: KnobValue
    steps: int  # signed grid steps taken
    needed: int  # signed grid steps to reach the target
    clipped: bool  # the target is further than max_step: this is one step of several


def approach(spec: KnobSpec, current: KnobValue, target: float) -> Approach:
    """Move ``current`` toward ``target`` by at most ``spec.max_step`` (on the grid).

    A far-away target is approached step by step, each step applied and judged live before the
    next (the registry's max_step is a promise to the operator, not a hint).
    """
    snapped = snap_to_grid(spec, target)
    step = spec.step or 1.0
    needed = round((float(snapped) - float(current)) / step)
    limit = max(1, round((spec.max_step or step) / step))
    steps = max(-limit, min(limit, needed))
    proposed = step_value(spec, current, steps) if steps else current
    return Approach(
        target=snapped, proposed=proposed, steps=steps, needed=needed, clipped=steps != needed
    )
