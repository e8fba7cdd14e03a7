"""One knob family's change lifecycle: LKG, the change in flight, its live verdict, rollback.

Shared by the two single-family mechanisms (the scalp trainer and the autotune): bootstrap the
last-known-good (LKG) values, notice values someone else changed, judge the change in flight on
the trades *opened under* it against the trades opened under the LKG with the shared judge
(``autolearn.core.judge``: hard limits first, then the always-valid sequential test), and say
whether to promote, roll back (fail or deadline) or keep waiting.

The tuner has its own multi-family version of the same steps (``autolearn.tuner.decide``); this
module is the one-family form, so the scalp trainer and autotune need not reach into the tuner.

Pure: no I/O, no clock (``now`` is a parameter); a malformed stored state raises ``StateError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from autolearn.core.judge import (
    HardLimits,
    JudgeParams,
    Outcome,
    VersionTimeline,
    check_hard_limits,
    judge,
    split_by_arm,
)
from autolearn.core.knobs import KnobSpec, KnobValue, Owner, snap_to_grid, step_value
from autolearn.core.metrics import Units, pnl
from autolearn.core.model import Trade
from autolearn.core.timestamps import TimestampError, format_utc, parse_utc
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


@dataclass(frozen=True, slots=True, kw_only=True)
class InFlight:
    """A change waiting for its live verdict."""

    version: str  # candidate config version (content address); "" until the apply is known
    values: dict[str, KnobValue]
    baseline_version: str
    baseline_values: dict[str, KnobValue]
    started_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "values": dict(sorted(self.values.items())),
            "baseline_version": self.baseline_version,
            "baseline_values": dict(sorted(self.baseline_values.items())),
            "started_at": format_utc(self.started_at),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> InFlight:
        return cls(
            version=str(doc["version"]),
            values=dict(doc["values"]),
            baseline_version=str(doc["baseline_version"]),
            baseline_values=dict(doc["baseline_values"]),
            started_at=parse_utc(doc["started_at"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FamilyState:
    """The family's learning state, stored as the mechanism's JSON."""

    lkg_version: str
    lkg_values: dict[str, KnobValue]
    lkg_bootstrap: bool = True  # LKG is "what was there at the first run", never judged
    changed_at: datetime | None = None
    cooldown_until: datetime | None = None
    in_flight: InFlight | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "lkg_version": self.lkg_version,
            "lkg_values": dict(sorted(self.lkg_values.items())),
            "lkg_bootstrap": self.lkg_bootstrap,
            "changed_at": format_utc(self.changed_at) if self.changed_at else None,
            "cooldown_until": format_utc(self.cooldown_until) if self.cooldown_until else None,
            "in_flight": self.in_flight.to_json() if self.in_flight else None,
        }


def parse_state(doc: Mapping[str, Any], source: str) -> FamilyState | None:
    """The stored state (``None`` before the first run); malformed -> ``StateError``."""
    if not doc:
        return None
    try:
        return FamilyState(
            lkg_version=str(doc["lkg_version"]),
            lkg_values=dict(doc["lkg_values"]),
            lkg_bootstrap=bool(doc.get("lkg_bootstrap", False)),
            changed_at=_time(doc.get("changed_at")),
            cooldown_until=_time(doc.get("cooldown_until")),
            in_flight=InFlight.from_json(doc["in_flight"]) if doc.get("in_flight") else None,
        )
    except (KeyError, TypeError, ValueError, TimestampError) as exc:
        raise StateError(
            f"{source}: malformed state ({type(exc).__name__}: {exc}); fix or move the file "
            "aside (the mechanism then bootstraps its LKG from the current values)"
        ) from exc


def _time(value: object) -> datetime | None:
    return None if value in (None, "") else parse_utc(str(value))


def family_values(
    specs: Sequence[KnobSpec], values: Mapping[str, KnobValue]
) -> dict[str, KnobValue]:
    """The family's knobs from ``values`` (registry defaults where absent)."""
    return {s.name: values.get(s.name, s.default) for s in specs}


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
    expected = state.in_flight.values if state.in_flight else state.lkg_values
    if dict(now_values) == expected:
        return state, []
    changed = [k for k in now_values if now_values[k] != expected.get(k)]
    if state.in_flight is not None and dict(now_values) == state.lkg_values:
        return replace(state, in_flight=None, changed_at=now), ["in_flight_reverted_externally"]
    if any(writers.get(k) == Owner.OPERATOR.value for k in changed):
        # A human set these values: they become the LKG (never judged away by a mechanism).
        new = replace(
            state,
            lkg_version=version,
            lkg_values=dict(now_values),
            lkg_bootstrap=False,
            in_flight=None,
            changed_at=now,
        )
        return new, ["operator_change"]
    # Our own write without its state (crash between apply and state write): judge it.
    flight = InFlight(
        version=version,
        values=dict(now_values),
        baseline_version=state.lkg_version,
        baseline_values=dict(state.lkg_values),
        started_at=now,
    )
    return replace(state, in_flight=flight, changed_at=now), ["recovered_in_flight"]


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

    def arm(version: str) -> str | None:
        layer = version_values.get(version)
        if layer is None:
            return None
        # a version's runtime layer omits knobs at their preset: fall back to the preset
        values = {k: layer.get(k, d) for k, d in defaults.items()}
        if values == flight.values:
            return "candidate"
        return "baseline" if values == flight.baseline_values else None

    arms, unattributed = split_by_arm(trades, arm, timeline)
    candidate = sorted(
        (t for t in arms.get("candidate", []) if t.entry_at >= flight.started_at),
        key=lambda t: (t.close_at, t.broker_trade_id, t.close_tx_id),
    )
    baseline = arms.get("baseline", [])
    verdict = check_hard_limits(pnl(candidate, Units.ACCOUNT), settings.hard_limits) or judge(
        pnl(candidate), pnl(baseline), settings.judge
    )
    record = verdict.to_record() | {
        "candidate_version": flight.version,
        "baseline_version": flight.baseline_version,
        "n_baseline": len(baseline),
        "started_at": format_utc(flight.started_at),
        "unattributed": unattributed,
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
