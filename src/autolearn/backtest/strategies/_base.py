"""The contract every reference strategy follows (a small plug-in family, explicit registry).

A strategy turns candles and many knob sets into entry signals: an ``int8`` array of shape
``(n_sets, n_bars)`` with +1 (go long), -1 (go short) or 0, decided at the *close* of each bar
(the engine fills at the next bar's open). It must be pure and deterministic, must not look at
bars after ``i`` when deciding bar ``i``, and must not manage positions, exits or sizing (the
engine owns those). Knob names follow the original bot's where one exists (original-system.md 4).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from autolearn.backtest.candles import Candles

__all__ = ["Params", "Strategy", "int_knob", "range_knob"]

Params = Mapping[str, float]


class Strategy(Protocol):
    """A signal generator; ``defaults`` names every knob it reads, with its default value."""

    @property
    def name(self) -> str: ...

    @property
    def defaults(self) -> Mapping[str, float]: ...

    def check(self, params: Params) -> list[str]:
        """Every problem with one knob set (empty when valid); the engine raises ConfigError."""
        ...

    def signals(self, candles: Candles, param_sets: Sequence[Params]) -> NDArray[np.int8]:
        """Entry signals for each knob set, shape ``(len(param_sets), len(candles))``."""
        ...


def int_knob(params: Params, name: str, minimum: int, problems: list[str]) -> None:
    """Append a problem unless ``params[name]`` is a whole number >= ``minimum``."""
    value = params[name]
    if not math.isfinite(value) or value != int(value) or value < minimum:
        problems.append(f"{name}: must be a whole number >= {minimum}, got {value!r}")


def range_knob(params: Params, name: str, low: float, high: float, problems: list[str]) -> None:
    """Append a problem unless ``low <= params[name] <= high``."""
    value = params[name]
    if not (math.isfinite(value) and low <= value <= high):
        problems.append(f"{name}: must be within [{low}, {high}], got {value!r}")
