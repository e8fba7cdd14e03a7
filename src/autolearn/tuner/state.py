"""The tuner's own state (``mechanisms/tuner.json``) as frozen values, parsed strictly.

Per family: the last-known-good (LKG) version and values, when the family last changed, the
change in flight (candidate version and values, baseline, start), the cooldown (the stored form
every mechanism shares, ``autolearn.core.lifecycle``), and the tuner's own consecutive
same-direction step counters. Plus the mechanism's mode (live / shadow until ...).

Counterfactual families (issue 12) add: the flight's pre-registered ``forecast`` (the per-trade
effect the live judge checks it against), when the family last evaluated its counterfactual
(``cf_at``), and a family freeze after a contradicted forecast (``frozen_code``/``frozen_until``).

Pure: converts between dicts (as stored by ``StateStore.read_mechanism``) and values; a malformed
document raises ``StateError`` naming the field, never a silent reset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from autolearn.core import lifecycle
from autolearn.core.timestamps import TimestampError, format_utc, parse_utc
from autolearn.errors import StateError

__all__ = ["FamilyState", "InFlight", "TunerState"]


@dataclass(frozen=True, slots=True, kw_only=True)
class InFlight(lifecycle.InFlight):
    """A change waiting for its verdict, with the grid steps it took per knob."""

    # signed grid steps per knob (for the direction counters); none for a recovered change
    steps: dict[str, int] = field(default_factory=dict)
    # A counterfactual change's pre-registered forecast (``CfForecast.to_json``); None for a
    # change proposed by the expectancy rules (judged by the ordinary harm/promote rule).
    forecast: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        doc = lifecycle.InFlight.to_json(self) | {"steps": dict(sorted(self.steps.items()))}
        return doc | ({"forecast": dict(self.forecast)} if self.forecast is not None else {})

    @classmethod
    def fields_from_json(cls, doc: Mapping[str, Any]) -> dict[str, Any]:
        steps = {str(k): int(v) for k, v in doc.get("steps", {}).items()}
        forecast = doc.get("forecast")
        if forecast is not None and not isinstance(forecast, Mapping):
            raise TypeError(f"forecast must be an object, got {forecast!r}")
        return lifecycle.InFlight.fields_from_json(doc) | {
            "steps": steps,
            "forecast": dict(forecast) if forecast is not None else None,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class FamilyState(lifecycle.FamilyState):
    """One knob family's learning state, with its same-direction step counters."""

    flight_type: ClassVar[type[lifecycle.InFlight]] = InFlight

    in_flight: InFlight | None = None
    streaks: dict[str, tuple[int, int]] = field(default_factory=dict)  # knob -> (dir, count)
    cf_at: datetime | None = None  # the last counterfactual evaluation that found signals
    frozen_code: str = ""  # e.g. cf_contradicted: the family proposes nothing until ...
    frozen_until: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        streaks = {k: list(v) for k, v in sorted(self.streaks.items())}
        return lifecycle.FamilyState.to_json(self) | {
            "streaks": streaks,
            "cf_at": format_utc(self.cf_at) if self.cf_at else None,
            "frozen_code": self.frozen_code,
            "frozen_until": format_utc(self.frozen_until) if self.frozen_until else None,
        }

    @classmethod
    def fields_from_json(cls, doc: Mapping[str, Any]) -> dict[str, Any]:
        streaks = {str(k): (int(v[0]), int(v[1])) for k, v in doc.get("streaks", {}).items()}
        flight = doc.get("in_flight")
        return lifecycle.FamilyState.fields_from_json(doc) | {
            # called on the base class, the base parses the flight as its own InFlight: the
            # tuner's (steps, forecast) must be parsed here, or they are lost on every reload
            "in_flight": cls.flight_type.from_json(flight) if flight else None,
            "streaks": streaks,
            "cf_at": _time(doc.get("cf_at")),
            "frozen_code": str(doc.get("frozen_code", "")),
            "frozen_until": _time(doc.get("frozen_until")),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TunerState:
    """The whole tuner state."""

    families: dict[str, FamilyState] = field(default_factory=dict)
    mode: str = "live"  # "live" or "shadow" (after a failed change with on_fail=shadow)
    shadow_until: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "families": {k: v.to_json() for k, v in sorted(self.families.items())},
            "mode": self.mode,
            "shadow_until": format_utc(self.shadow_until) if self.shadow_until else None,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], source: str = "mechanisms/tuner.json") -> TunerState:
        """Parse the stored state; an empty document is the initial state."""
        if not doc:
            return cls()
        try:
            mode = str(doc.get("mode", "live"))
            if mode not in ("live", "shadow"):
                raise ValueError(f"mode must be live or shadow, got {mode!r}")
            return cls(
                families={
                    str(k): FamilyState.from_json(v) for k, v in doc.get("families", {}).items()
                },
                mode=mode,
                shadow_until=_time(doc.get("shadow_until")),
            )
        except (KeyError, TypeError, ValueError, IndexError, TimestampError) as exc:
            raise StateError(
                f"{source}: malformed tuner state ({type(exc).__name__}: {exc}); fix or move the "
                "file aside (the tuner then bootstraps its LKG from the current values)"
            ) from exc


def _time(value: object) -> datetime | None:
    return None if value in (None, "") else parse_utc(str(value))
