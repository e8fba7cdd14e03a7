"""The one learner lifecycle: a knob family's LKG, its change in flight, the verdict, rollback.

Every learning mechanism (the tuner's families, the scalp trainer, autotune) runs its families
through these functions and nothing else, so they cannot drift apart on what matters most to the
operator. A learner supplies only what is its own: which trades are relevant, when it has enough
evidence, how it proposes. The state machine of one family:

    bootstrap --> idle --propose/apply--> in flight --pass--> promote (LKG := candidate) --> idle
                   ^                        |  \\--fail / hard limit--> rollback (cooldown) --> idle
                   |                        |   \\--deadline, undecided--> revert | pause
                   +--- external change ----+   (an operator's set, an external revert, a crash)

- ``FamilyState`` / ``InFlight``: the stored form (LKG version and values, the change in flight
  with its arm split, when the family last decided, the cooldown);
- ``reconcile``: bootstrap, or explain values someone else changed (``external_change``);
- ``judge_in_flight``: attribute trades to the candidate and the baseline arm by the version they
  were opened under, judge (hard limits, then the sequential judge of ``core.judge``) and say what
  follows: promote, rollback (harm), revert or pause (undecided at the deadline), hold;
- ``start_flight`` / ``finalize``: the state after proposing, and once the apply is known.

The baseline is fixed when the flight starts and never shrinks: with concurrent arms it is the
LKG arm's trades opened since the start (same hours, same market); without (a bot that passes no
unit id) it is the LKG trades opened in ``baseline_lookback`` before the start, a fixed window.
Deadlines count candidate trades, not hours (a quiet week must not end a flight undecided).

Pure: no I/O, no clock (``now`` is a parameter); a malformed stored state raises ``StateError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Self, TypeVar

from autolearn.core.arms import ArmSplit
from autolearn.core.judge import (
    ForecastBand,
    HardLimits,
    JudgeParams,
    Outcome,
    Verdict,
    VersionTimeline,
    check_hard_limits,
    judge,
    judge_forecast,
    split_by_arm,
)
from autolearn.core.knobs import KnobSpec, KnobValue, Owner
from autolearn.core.metrics import Units, pnl
from autolearn.core.model import Trade
from autolearn.core.timestamps import TimestampError, format_utc, parse_utc
from autolearn.errors import StateError

__all__ = [
    "ArmSettings",
    "FamilyState",
    "FlightResult",
    "FlightSettings",
    "FlightVerdict",
    "InFlight",
    "OnInconclusive",
    "external_change",
    "family_values",
    "finalize",
    "json_safe",
    "judge_flight",
    "judge_in_flight",
    "parse_state",
    "reconcile",
    "split_of",
    "start_flight",
]


S = TypeVar("S", bound="FamilyState")


class OnInconclusive(StrEnum):
    """What an undecided change does at its deadline."""

    REVERT = "revert"  # back to the LKG (the safe default: an unproven change does not stay)
    PAUSE = "pause"  # keep both arms and wait for the operator (Argo Rollouts' pause)


@dataclass(frozen=True, slots=True, kw_only=True)
class ArmSettings:
    """How the entries are split while a change is in flight."""

    concurrent: bool = True  # split by unit id; False: before/after only (weaker)
    # The candidate's share of units. Below 0.5 exposes fewer trades to an unproven change and
    # needs fewer candidate trades per decision (the baseline arm is larger), at the cost of
    # calendar time (bench/bench_judge.py).
    candidate_share: float = 0.3

    def __post_init__(self) -> None:
        if not 0.05 <= self.candidate_share <= 0.95:
            raise ValueError(f"candidate_share must be in [0.05, 0.95], got {self.candidate_share}")


@dataclass(frozen=True, slots=True, kw_only=True)
class FlightSettings:
    """How a change in flight is judged, when it ends undecided, and what a rollback costs."""

    judge: JudgeParams = field(default_factory=JudgeParams)
    hard_limits: HardLimits = field(default_factory=HardLimits)
    arms: ArmSettings = field(default_factory=ArmSettings)
    # Candidate trades; undecided by then -> on_inconclusive. 1,500 gives a harm of 0.16 sd
    # (0.8 pips at sd 5) >= 95 % power at a 30 % share (bench/bench_judge.py).
    deadline_trades: int = 1500
    max_age: timedelta = timedelta(days=60)  # a backstop for a strategy that stopped trading
    on_inconclusive: OnInconclusive = OnInconclusive.REVERT
    baseline_lookback: timedelta = timedelta(days=7)  # before/after: LKG trades before the start
    cooldown: timedelta = timedelta(hours=6)  # no new proposal for the family after a rollback

    def __post_init__(self) -> None:
        if self.deadline_trades < self.judge.min_candidate:
            raise ValueError(
                f"deadline_trades ({self.deadline_trades}) must be >= judge.min_candidate "
                f"({self.judge.min_candidate}): the judge could never decide"
            )
        for name in ("max_age", "baseline_lookback"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be > 0")
        if self.cooldown < timedelta(0):
            raise ValueError("cooldown must be >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class InFlight:
    """A change waiting for its live verdict (a learner may add fields, e.g. the tuner's steps)."""

    version: str  # candidate config version (content address); "" until the apply is known
    values: dict[str, KnobValue]
    baseline_version: str  # the LKG it is judged against
    baseline_values: dict[str, KnobValue]
    started_at: datetime
    split_id: str = ""  # the arm split's id ("": before/after, no concurrent arms)
    share: float = 0.0  # the candidate's share of units (0 without arms)
    paused_at: datetime | None = None  # undecided at its deadline, waiting for the operator

    def to_json(self) -> dict[str, Any]:
        arms: dict[str, Any] = (
            {"split_id": self.split_id, "share": self.share} if self.split_id else {}
        )
        if self.paused_at is not None:
            arms["paused_at"] = format_utc(self.paused_at)
        return {
            "version": self.version,
            "values": dict(sorted(self.values.items())),
            "baseline_version": self.baseline_version,
            "baseline_values": dict(sorted(self.baseline_values.items())),
            "started_at": format_utc(self.started_at),
        } | arms

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Self:
        return cls(**cls.fields_from_json(doc))

    @classmethod
    def fields_from_json(cls, doc: Mapping[str, Any]) -> dict[str, Any]:
        """The constructor's arguments from the stored form (a subclass adds its own)."""
        share = doc.get("share", 0.0)
        if isinstance(share, bool) or not isinstance(share, int | float):
            raise TypeError(f"share must be a number, got {share!r}")
        return {
            "version": str(doc["version"]),
            "values": dict(doc["values"]),
            "baseline_version": str(doc["baseline_version"]),
            "baseline_values": dict(doc["baseline_values"]),
            "started_at": parse_utc(doc["started_at"]),
            "split_id": str(doc.get("split_id", "")),
            "share": float(share),
            "paused_at": _time(doc.get("paused_at")),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class FamilyState:
    """One knob family's learning state, as stored in the mechanism's JSON."""

    flight_type: ClassVar[type[InFlight]] = InFlight  # what ``in_flight`` parses to

    lkg_version: str
    lkg_values: dict[str, KnobValue]
    lkg_bootstrap: bool = True  # LKG is "what was there at the first run", never judged
    changed_at: datetime | None = None  # the family's last decision (evidence counts from here)
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

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Self:
        """The stored state; a malformed one raises ``KeyError``/``TypeError``/``ValueError``."""
        return cls(**cls.fields_from_json(doc))

    @classmethod
    def fields_from_json(cls, doc: Mapping[str, Any]) -> dict[str, Any]:
        """The constructor's arguments from the stored form (a subclass adds its own)."""
        flight = doc.get("in_flight")
        return {
            "lkg_version": str(doc["lkg_version"]),
            "lkg_values": dict(doc["lkg_values"]),
            "lkg_bootstrap": bool(doc.get("lkg_bootstrap", False)),
            "changed_at": _time(doc.get("changed_at")),
            "cooldown_until": _time(doc.get("cooldown_until")),
            "in_flight": cls.flight_type.from_json(flight) if flight else None,
        }


def _time(value: object) -> datetime | None:
    return None if value in (None, "") else parse_utc(str(value))


def parse_state(cls: type[S], doc: Mapping[str, Any], source: str) -> S | None:
    """The stored state of one family (``None`` before the first run); malformed: ``StateError``."""
    if not doc:
        return None
    try:
        return cls.from_json(doc)
    except (KeyError, TypeError, ValueError, TimestampError) as exc:
        raise StateError(
            f"{source}: malformed state ({type(exc).__name__}: {exc}); fix or move the file "
            "aside (the mechanism then bootstraps its LKG from the current values)"
        ) from exc


def family_values(
    specs: Sequence[KnobSpec], values: Mapping[str, KnobValue]
) -> dict[str, KnobValue]:
    """The family's knobs from ``values`` (registry defaults where absent)."""
    return {s.name: values.get(s.name, s.default) for s in specs}


def external_change(
    lkg_values: Mapping[str, KnobValue],
    flight_values: Mapping[str, KnobValue] | None,
    now_values: Mapping[str, KnobValue],
    writers: Mapping[str, str],
) -> str | None:
    """Why the family's ``now_values`` differ from what its state expects (``None``: they don't).

    ``in_flight_reverted_externally``: the candidate was replaced by the LKG values (the change
    ends, unjudged); ``operator_change``: a human wrote one of the changed knobs (the values
    become the LKG, never judged away by a mechanism); ``recovered_in_flight``: the mechanism's
    own write whose state was lost (a crash between apply and state write): judge it.
    """
    expected = flight_values if flight_values is not None else lkg_values
    if dict(now_values) == dict(expected):
        return None
    if flight_values is not None and dict(now_values) == dict(lkg_values):
        return "in_flight_reverted_externally"
    changed = [k for k in now_values if now_values[k] != expected.get(k)]
    if any(writers.get(k) == Owner.OPERATOR.value for k in changed):
        return "operator_change"
    return "recovered_in_flight"


def reconcile(
    state: S | None,
    bootstrap: type[S],
    now_values: Mapping[str, KnobValue],
    version: str,
    writers: Mapping[str, str],
    now: datetime,
) -> tuple[S, list[str]]:
    """Bootstrap a ``bootstrap`` state, or explain values that differ from ``state``'s."""
    if state is None:
        return bootstrap(lkg_version=version, lkg_values=dict(now_values)), ["lkg_bootstrap"]
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
    # recovered: judged before/after (its arms, if any, were lost with the state)
    flight = type(state).flight_type(
        version=version,
        values=dict(now_values),
        baseline_version=state.lkg_version,
        baseline_values=dict(state.lkg_values),
        started_at=now,
    )
    return replace(state, in_flight=flight, changed_at=now), [code]


@dataclass(frozen=True, slots=True, kw_only=True)
class FlightVerdict:
    """The verdict on a change in flight and the counts behind it."""

    verdict: Verdict
    n_baseline: int  # trades the baseline arm holds
    unattributed: int  # trades under a version that is neither arm (or unknown)
    baseline_mode: str  # concurrent | before_after


def judge_flight(
    flight: InFlight,
    trades: Sequence[Trade],
    defaults: Mapping[str, KnobValue],
    version_values: Mapping[str, Mapping[str, KnobValue]],
    timeline: VersionTimeline,
    settings: FlightSettings,
    forecast: ForecastBand | None = None,
) -> FlightVerdict:
    """Judge ``flight`` on the ``trades`` opened under its candidate vs its baseline values.

    ``defaults`` are the family knobs' presets; ``version_values`` the runtime layer of each known
    version. A trade's arm is the family values of the version it was opened under (pinned
    ``config_version``, else the timeline at ``entry_at``); only trades opened since the start
    count for the candidate, and for a concurrent baseline. A change with a counterfactual
    ``forecast`` is judged against it (``core.judge.judge_forecast``) after the same hard limits.
    """

    def arm(version: str) -> str | None:
        layer = version_values.get(version)
        if layer is None:
            return None
        # a version's runtime layer omits knobs at their preset: fall back to the preset
        values = {k: layer.get(k, d) for k, d in defaults.items()}
        if values == flight.values:
            return "candidate"
        return "baseline" if values == flight.baseline_values else None

    def in_close_order(ts: list[Trade]) -> list[Trade]:
        return sorted(ts, key=lambda t: (t.close_at, t.broker_trade_id, t.close_tx_id))

    arms, unattributed = split_by_arm(trades, arm, timeline)
    start = flight.started_at
    candidate = in_close_order([t for t in arms.get("candidate", []) if t.entry_at >= start])
    lkg = arms.get("baseline", [])
    concurrent = [t for t in lkg if t.entry_at >= start]
    # A split whose bot passes no unit id has no concurrent baseline: fall back, and say so.
    if flight.split_id and (concurrent or len(candidate) < settings.judge.min_candidate):
        baseline, mode = concurrent, "concurrent"
    else:
        since = start - settings.baseline_lookback
        baseline, mode = [t for t in lkg if since <= t.entry_at < start], "before_after"
    baseline = in_close_order(baseline)
    verdict = check_hard_limits(
        pnl(candidate),
        pnl(baseline),
        settings.hard_limits,
        horizon=settings.deadline_trades,
        candidate_account=pnl(candidate, Units.ACCOUNT),
    ) or (
        judge(pnl(candidate), pnl(baseline), settings.judge)
        if forecast is None
        else judge_forecast(pnl(candidate), pnl(baseline), forecast, settings.judge)
    )
    return FlightVerdict(
        verdict=verdict, n_baseline=len(baseline), unattributed=unattributed, baseline_mode=mode
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class FlightResult:
    """The live verdict on the change in flight and what follows from it.

    ``action``: none (idle) | hold | promote | rollback (harm or a hard limit) | revert
    (undecided at the deadline) | pause (undecided, waiting for the operator).
    """

    action: str
    code: str
    state: FamilyState
    rollback: dict[str, KnobValue]  # values to restore (ROLLBACK apply) on rollback / revert
    target_version: str | None
    verdict: dict[str, Any] | None

    @property
    def ends_flight(self) -> bool:
        return self.action in ("promote", "rollback", "revert")


def judge_in_flight(
    state: S,
    trades: Sequence[Trade],
    defaults: Mapping[str, KnobValue],
    now_values: Mapping[str, KnobValue],
    version_values: Mapping[str, Mapping[str, KnobValue]],
    timeline: VersionTimeline,
    now: datetime,
    settings: FlightSettings,
    forecast: ForecastBand | None = None,
) -> FlightResult:
    """Judge ``state.in_flight`` on the relevant ``trades`` (``action`` none when idle).

    ``forecast``: the change's counterfactual forecast, when it has one (see :func:`judge_flight`).
    """
    flight = state.in_flight
    if flight is None:
        return FlightResult(
            action="none", code="idle", state=state, rollback={}, target_version=None, verdict=None
        )
    judged = judge_flight(flight, trades, defaults, version_values, timeline, settings, forecast)
    verdict = judged.verdict
    record = verdict.to_record() | {
        "candidate_version": flight.version,
        "baseline_version": flight.baseline_version,
        "n_baseline": judged.n_baseline,
        "baseline_mode": judged.baseline_mode,
        "share": flight.share or None,
        "started_at": format_utc(flight.started_at),
        "unattributed": judged.unattributed,
        "deadline_trades": settings.deadline_trades,
    }
    if forecast is not None:
        record["forecast"] = {
            "estimate": forecast.estimate,
            "low": forecast.low,
            "high": forecast.high,
            "confirm_trades": forecast.confirm_trades,
        }

    def result(action: str, code: str, new: FamilyState, back: bool = False) -> FlightResult:
        wanted = {k: v for k, v in state.lkg_values.items() if now_values.get(k) != v}
        if back and not wanted:
            code += ":lkg_equals_current"
        return FlightResult(
            action=action,
            code=code,
            state=new,
            rollback=wanted if back else {},
            target_version=state.lkg_version if back else None,
            verdict=record,
        )

    if verdict.outcome is Outcome.PASS:
        promoted = replace(
            state,
            lkg_version=flight.version,
            lkg_values=dict(flight.values),
            lkg_bootstrap=False,
            in_flight=None,
            changed_at=now,
        )
        return result("promote", f"promote:{verdict.reason}", promoted)
    ended = replace(state, in_flight=None, changed_at=now)
    if verdict.outcome is Outcome.FAIL:
        rolled = replace(ended, cooldown_until=now + settings.cooldown)
        return result("rollback", f"rollback:{verdict.reason}", rolled, back=True)
    past_deadline = (
        verdict.n_candidate >= settings.deadline_trades
        or now - flight.started_at >= settings.max_age
    )
    if not past_deadline:
        return result("hold", f"in_flight:{verdict.reason}", state)
    if settings.on_inconclusive is OnInconclusive.PAUSE:
        paused = flight if flight.paused_at else replace(flight, paused_at=now)
        return result("pause", "paused:deadline_undecided", replace(state, in_flight=paused))
    return result("revert", "revert:deadline_undecided", ended, back=True)


def start_flight(
    state: S,
    values: Mapping[str, KnobValue],
    now: datetime,
    settings: FlightSettings,
    split_id: str,
    **extra: Any,
) -> S:
    """The state after proposing ``values`` (the full family values) at ``now``.

    ``split_id`` names the arm split (``"<mechanism>/<family>/<now>"``); without concurrent arms
    in ``settings`` the flight is judged before/after. ``extra``: the learner's own flight fields.
    """
    concurrent = settings.arms.concurrent
    flight = type(state).flight_type(
        version="",  # known after the apply: finalize() fills it in
        values=dict(values),
        baseline_version=state.lkg_version,
        baseline_values=dict(state.lkg_values),
        started_at=now,
        split_id=split_id if concurrent else "",
        share=settings.arms.candidate_share if concurrent else 0.0,
        **extra,
    )
    return replace(state, in_flight=flight, changed_at=now)


def split_of(flight: InFlight | None, mechanism: str, family: str) -> ArmSplit | None:
    """The arm split the store must serve for a flight that has one."""
    if flight is None or not flight.split_id:
        return None
    changed = {k: v for k, v in flight.baseline_values.items() if flight.values.get(k) != v}
    return ArmSplit(
        split_id=flight.split_id,
        mechanism=mechanism,
        family=family,
        share=flight.share,
        baseline=changed or dict(flight.baseline_values),
    )


def finalize(
    proposed: S,
    unapplied: S,
    *,
    applied: bool,
    version_after: str,
    values_after: Mapping[str, KnobValue],
) -> S:
    """The state to store once the shell knows whether (and what) the apply adopted."""
    if not applied:
        return unapplied
    flight = proposed.in_flight
    if flight is None or flight.version:
        return proposed
    values = {k: values_after.get(k, v) for k, v in flight.values.items()}
    return replace(proposed, in_flight=replace(flight, version=version_after, values=values))


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None (records are strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, Verdict):
        return value.to_record()
    return value
