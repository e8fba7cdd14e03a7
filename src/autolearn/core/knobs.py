"""Knob specifications: type, bounds, step grid and the arithmetic of legal values.

A knob is a slow-moving parameter that exactly one mechanism may write. Everything here is pure:
no I/O, no clock. Floats are compared on the grid with a relative tolerance, and values are
rounded to the grid's decimals so ``0.1 + 0.2`` never lands between two grid points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal

__all__ = [
    "ADMITS",
    "Admits",
    "Approach",
    "KnobSpec",
    "KnobType",
    "KnobValue",
    "Owner",
    "approach",
    "is_on_grid",
    "problems_with_value",
    "snap_to_grid",
    "step_value",
]

KnobValue = float | int | bool
# How an entry-threshold knob compares its score: "above" admits a signal when
# ``scores[score] >= value`` (a higher value is stricter), "below" when ``<= value``.
Admits = Literal["above", "below"]
ADMITS: tuple[Admits, ...] = ("above", "below")


class Owner(StrEnum):
    """The single writer of a knob."""

    TUNER = "tuner"
    POLICY = "policy"
    SCALP_TRAINER = "scalp_trainer"
    AUTOTUNE = "autotune"
    OPERATOR = "operator"


class KnobType(StrEnum):
    FLOAT = "float"
    INT = "int"
    BOOL = "bool"


@dataclass(frozen=True, slots=True, kw_only=True)
class KnobSpec:
    """One registered knob. ``lower``/``upper``/``step``/``max_step`` are ``None`` for bools.

    ``step`` is the grid spacing anchored at ``lower``; ``max_step`` the largest move in one apply
    (a multiple of ``step``); ``max_drift_per_day`` the largest total absolute movement within any
    24 hours; ``min_interval`` the least time between two changes of this knob.

    ``score``/``admits`` (both or neither, int/float knobs only) mark an entry threshold: the
    named score of each logged signal it compares and in which direction (:data:`Admits`), so
    a counterfactual can replay the signals each candidate value would admit.
    """

    name: str
    owner: Owner
    type: KnobType
    default: KnobValue
    lower: float | None = None
    upper: float | None = None
    step: float | None = None
    max_step: float | None = None
    min_interval: timedelta = timedelta(0)
    max_drift_per_day: float | None = None
    family: str = ""
    doc: str = ""
    reader: str = ""
    score: str | None = None
    admits: Admits | None = None

    def __post_init__(self) -> None:
        if (self.score is None) != (self.admits is None):
            raise ValueError(
                f"knob {self.name}: score and admits go together, got score {self.score!r} "
                f"and admits {self.admits!r}"
            )
        if self.score is not None and (self.type is KnobType.BOOL or not self.score):
            raise ValueError(
                f"knob {self.name}: a score needs an int or float knob and a non-empty name, "
                f"got type {self.type} and score {self.score!r}"
            )
        if self.admits is not None and self.admits not in ADMITS:
            raise ValueError(
                f"knob {self.name}: admits must be one of {ADMITS}, got {self.admits!r}"
            )

    @property
    def decimals(self) -> int:
        """Decimal places of the grid (so values print and hash stably)."""
        if self.step is None or self.type is not KnobType.FLOAT:
            return 0
        exponent = Decimal(repr(self.step)).normalize().as_tuple().exponent
        grid = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        lower = 0
        if self.lower is not None:
            lexp = Decimal(repr(self.lower)).normalize().as_tuple().exponent
            lower = -lexp if isinstance(lexp, int) and lexp < 0 else 0
        return max(grid, lower)


def _as_number(spec: KnobSpec, value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if spec.type is KnobType.INT and isinstance(value, float) and not value.is_integer():
        return None
    try:
        return float(value)
    except OverflowError:  # an int beyond float range: not a legal value, not a crash
        return None


def problems_with_value(spec: KnobSpec, value: object) -> list[str]:
    """Every reason ``value`` is not a legal value of ``spec`` (empty when legal)."""
    if spec.type is KnobType.BOOL:
        return [] if isinstance(value, bool) else [f"expected a bool, got {value!r}"]
    number = _as_number(spec, value)
    if number is None or not math.isfinite(number):
        return [f"expected a finite {spec.type.value}, got {value!r}"]
    found: list[str] = []
    assert spec.lower is not None and spec.upper is not None
    if not spec.lower <= number <= spec.upper:
        found.append(f"{number:g} is outside bounds [{spec.lower:g}, {spec.upper:g}]")
    if not is_on_grid(spec, number):
        found.append(f"{number:g} is not on the grid {spec.lower:g} + k*{spec.step:g}")
    return found


def is_on_grid(spec: KnobSpec, value: float) -> bool:
    """True when ``value`` is ``lower + k * step`` for an integer ``k`` (within float noise)."""
    if spec.step is None or spec.lower is None:
        return True
    k = (value - spec.lower) / spec.step
    return math.isclose(k, round(k), rel_tol=0.0, abs_tol=1e-6)


def snap_to_grid(spec: KnobSpec, value: float) -> KnobValue:
    """The grid point nearest to ``value``, clamped into bounds and typed like the knob."""
    if spec.type is KnobType.BOOL:
        return bool(value)
    assert spec.lower is not None and spec.upper is not None
    clamped = min(max(value, spec.lower), spec.upper)
    if spec.step:
        k = round((clamped - spec.lower) / spec.step)
        clamped = spec.lower + k * spec.step
        if clamped > spec.upper + 1e-12:
            clamped -= spec.step
    if spec.type is KnobType.INT:
        return round(clamped)
    return round(clamped, spec.decimals)


def step_value(spec: KnobSpec, current: KnobValue, steps: int) -> KnobValue:
    """``current`` moved by ``steps`` grid steps (negative = down), clamped into bounds."""
    if spec.type is KnobType.BOOL:
        return bool(current) if steps == 0 else not bool(current)
    step = spec.step or 1.0
    return snap_to_grid(spec, float(current) + steps * step)


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
