"""The rules every learning mechanism applies to a knob family's change in flight.

Shared by the tuner (many families, ``autolearn.tuner.decide``) and the one-family mechanisms
(the scalp trainer and autotune, ``autolearn.scalp_trainer.lifecycle``), so the three cannot
drift apart on what matters most to the operator:

- ``FamilyState`` / ``InFlight``: the stored form of a family's state: last-known-good (LKG)
  version and values, the change in flight, when it last changed, the cooldown (the tuner's
  subclasses add its step counters);
- ``family_values``: a family's values (the preset where the runtime layer has none);
- ``external_change``: why the family's live values differ from what its state expects (an
  operator's hand, an external revert, or the mechanism's own write whose state was lost);
- ``judge_flight``: which trades belong to the candidate and to the baseline (attribution by the
  version each trade was opened under), and the verdict on them: hard limits first, then the
  shared sequential judge;
- ``json_safe``: records are strict JSON (NaN = insufficient evidence becomes ``null``).

Each mechanism keeps its own decisions and record shape; the functions take only the fields they
read. Pure: no I/O, no clock (``now`` is never read here).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol, Self

from autolearn.core.judge import (
    HardLimits,
    JudgeParams,
    Verdict,
    VersionTimeline,
    check_hard_limits,
    judge,
    split_by_arm,
)
from autolearn.core.knobs import KnobSpec, KnobValue, Owner
from autolearn.core.metrics import Units, pnl
from autolearn.core.model import Trade
from autolearn.core.timestamps import format_utc, parse_utc

__all__ = [
    "FamilyState",
    "Flight",
    "FlightVerdict",
    "InFlight",
    "JudgeLimits",
    "external_change",
    "family_values",
    "json_safe",
    "judge_flight",
]


class Flight(Protocol):
    """What the judge reads of a change in flight (each mechanism's ``InFlight`` has it)."""

    @property
    def values(self) -> Mapping[str, KnobValue]: ...
    @property
    def baseline_values(self) -> Mapping[str, KnobValue]: ...
    @property
    def started_at(self) -> datetime: ...


class JudgeLimits(Protocol):
    """The judge's parameters and the candidate's hard limits (a mechanism's config has them)."""

    @property
    def judge(self) -> JudgeParams: ...
    @property
    def hard_limits(self) -> HardLimits: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class FlightVerdict:
    """The verdict on a change in flight and the counts behind it."""

    verdict: Verdict
    n_baseline: int  # trades attributed to the baseline (a hard-limit verdict reports 0)
    unattributed: int  # trades under a version that is neither arm (or unknown)


@dataclass(frozen=True, slots=True, kw_only=True)
class InFlight:
    """A change waiting for its live verdict (the tuner's adds its grid steps)."""

    version: str  # candidate config version (content address); "" until the apply is known
    values: dict[str, KnobValue]
    baseline_version: str  # the LKG it is judged against
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
    def from_json(cls, doc: Mapping[str, Any]) -> Self:
        return cls(**cls.fields_from_json(doc))

    @classmethod
    def fields_from_json(cls, doc: Mapping[str, Any]) -> dict[str, Any]:
        """The constructor's arguments from the stored form (a subclass adds its own)."""
        return {
            "version": str(doc["version"]),
            "values": dict(doc["values"]),
            "baseline_version": str(doc["baseline_version"]),
            "baseline_values": dict(doc["baseline_values"]),
            "started_at": parse_utc(doc["started_at"]),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class FamilyState:
    """One knob family's learning state, as stored in the mechanism's JSON."""

    flight_type: ClassVar[type[InFlight]] = InFlight  # what ``in_flight`` parses to

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


def judge_flight(
    flight: Flight,
    trades: Sequence[Trade],
    defaults: Mapping[str, KnobValue],
    version_values: Mapping[str, Mapping[str, KnobValue]],
    timeline: VersionTimeline,
    limits: JudgeLimits,
) -> FlightVerdict:
    """Judge ``flight`` on the ``trades`` opened under its candidate vs its baseline values.

    ``defaults`` are the family knobs' presets; ``version_values`` the runtime layer of each known
    version. A trade's arm is the family values of the version it was opened under (pinned
    ``config_version``, else the timeline at ``entry_at``); candidate trades count only when opened
    after the change started.
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

    arms, unattributed = split_by_arm(trades, arm, timeline)
    candidate = sorted(
        (t for t in arms.get("candidate", []) if t.entry_at >= flight.started_at),
        key=lambda t: (t.close_at, t.broker_trade_id, t.close_tx_id),
    )
    baseline = arms.get("baseline", [])
    verdict = check_hard_limits(pnl(candidate, Units.ACCOUNT), limits.hard_limits) or judge(
        pnl(candidate), pnl(baseline), limits.judge
    )
    return FlightVerdict(verdict=verdict, n_baseline=len(baseline), unattributed=unattributed)


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
