"""The tuner's own state (``mechanisms/tuner.json``) as frozen values, parsed strictly.

Per family: the last-known-good (LKG) version and values, when the family last changed, the
change in flight (candidate version and values, baseline, start), the cooldown, and the
consecutive same-direction step counters. Plus the mechanism's mode (live / shadow until ...).

Pure: converts between dicts (as stored by ``StateStore.read_mechanism``) and values; a malformed
document raises ``StateError`` naming the field, never a silent reset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autolearn.core.knobs import KnobValue
from autolearn.core.timestamps import TimestampError, format_utc, parse_utc
from autolearn.errors import StateError

__all__ = ["FamilyState", "InFlight", "TunerState"]


@dataclass(frozen=True, slots=True, kw_only=True)
class InFlight:
    """A change waiting for its verdict."""

    version: str  # the candidate config version (content address)
    values: dict[str, KnobValue]  # the family's candidate values
    baseline_version: str  # the LKG it is judged against
    baseline_values: dict[str, KnobValue]
    started_at: datetime
    steps: dict[str, int]  # signed grid steps per knob (for the direction counters)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "values": dict(sorted(self.values.items())),
            "baseline_version": self.baseline_version,
            "baseline_values": dict(sorted(self.baseline_values.items())),
            "started_at": format_utc(self.started_at),
            "steps": dict(sorted(self.steps.items())),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> InFlight:
        return cls(
            version=str(doc["version"]),
            values=dict(doc["values"]),
            baseline_version=str(doc["baseline_version"]),
            baseline_values=dict(doc["baseline_values"]),
            started_at=parse_utc(doc["started_at"]),
            steps={str(k): int(v) for k, v in doc.get("steps", {}).items()},
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FamilyState:
    """One knob family's learning state."""

    lkg_version: str
    lkg_values: dict[str, KnobValue]
    lkg_bootstrap: bool = True  # LKG is "what was there at the first run", never judged
    changed_at: datetime | None = None
    cooldown_until: datetime | None = None
    in_flight: InFlight | None = None
    streaks: dict[str, tuple[int, int]] = field(default_factory=dict)  # knob -> (dir, count)

    def to_json(self) -> dict[str, Any]:
        return {
            "lkg_version": self.lkg_version,
            "lkg_values": dict(sorted(self.lkg_values.items())),
            "lkg_bootstrap": self.lkg_bootstrap,
            "changed_at": format_utc(self.changed_at) if self.changed_at else None,
            "cooldown_until": format_utc(self.cooldown_until) if self.cooldown_until else None,
            "in_flight": self.in_flight.to_json() if self.in_flight else None,
            "streaks": {k: list(v) for k, v in sorted(self.streaks.items())},
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> FamilyState:
        return cls(
            lkg_version=str(doc["lkg_version"]),
            lkg_values=dict(doc["lkg_values"]),
            lkg_bootstrap=bool(doc.get("lkg_bootstrap", False)),
            changed_at=_time(doc.get("changed_at")),
            cooldown_until=_time(doc.get("cooldown_until")),
            in_flight=InFlight.from_json(doc["in_flight"]) if doc.get("in_flight") else None,
            streaks={str(k): (int(v[0]), int(v[1])) for k, v in doc.get("streaks", {}).items()},
        )


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
