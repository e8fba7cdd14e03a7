"""The scalp trainer's stored state: the shared lifecycle's, plus a counterfactual forecast.

A change proposed on re-simulated trades (``scalp_trainer.counterfactual``) carries its
pre-registered per-trade effect in the flight, so the live judge checks the change against that
forecast (``core.judge.judge_forecast``), not against zero; a change proposed by the win-rate
rules has none and is judged as before. Older state files (no ``forecast``) load unchanged.

Pure: dicts <-> values; a malformed document raises as ``core.lifecycle.parse_state`` says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from autolearn.core import lifecycle
from autolearn.core.judge import ForecastBand

__all__ = ["ScalpFamilyState", "ScalpInFlight"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScalpInFlight(lifecycle.InFlight):
    """A change in flight, with its counterfactual forecast when it has one."""

    forecast: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        doc = lifecycle.InFlight.to_json(self)
        return doc | ({"forecast": dict(self.forecast)} if self.forecast is not None else {})

    @classmethod
    def fields_from_json(cls, doc: Mapping[str, Any]) -> dict[str, Any]:
        forecast = doc.get("forecast")
        if forecast is not None and not isinstance(forecast, Mapping):
            raise TypeError(f"forecast must be an object, got {forecast!r}")
        return lifecycle.InFlight.fields_from_json(doc) | {
            "forecast": dict(forecast) if forecast is not None else None
        }

    def band(self, confirm_trades: int) -> ForecastBand | None:
        """The band the live judge checks this change against (None: the ordinary judge)."""
        if self.forecast is None:
            return None
        f = self.forecast
        return ForecastBand(
            estimate=float(f["estimate"]),
            low=float(f["low"]),
            high=float(f["high"]),
            confirm_trades=confirm_trades,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ScalpFamilyState(lifecycle.FamilyState):
    """The ``scalp.m1`` family's state; its flight is a :class:`ScalpInFlight`."""

    flight_type: ClassVar[type[lifecycle.InFlight]] = ScalpInFlight

    @classmethod
    def fields_from_json(cls, doc: Mapping[str, Any]) -> dict[str, Any]:
        flight = doc.get("in_flight")
        # the base parses the flight as its own InFlight: the forecast must be parsed here
        return lifecycle.FamilyState.fields_from_json(doc) | {
            "in_flight": cls.flight_type.from_json(flight) if flight else None
        }
