"""Objectives of the autotune search: per-trade P/L (pips) -> one score, higher is better.

A small plug-in family with an explicit registry (``OBJECTIVES``); config names one by key.
Contract: pure and deterministic; NaN means "not enough evidence" (fewer than ``min_trades``
trades, or no spread to measure risk) and the study records such a trial as pruned, never as a
bad score. Metrics come from ``autolearn.core.metrics`` (one definition of expectancy and
drawdown for the whole product); P/L is pooled over folds, never averaged per fold (the
original averaged PF across files, original-system.md 5.7).

Default, ``risk_adjusted_expectancy``: ``(E - lambda * DD / n) / sd`` — the expectancy net of
the maximum drawdown spread over the trades, in units of per-trade risk. Both terms are pips per
trade, so ``lambda`` is unit-free (for a driftless random walk ``DD / n`` is of the order of
``sd / sqrt(n)``, the same order as the noise in ``E``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from autolearn.core.metrics import max_drawdown, summarize
from autolearn.errors import ConfigError

__all__ = [
    "OBJECTIVES",
    "Expectancy",
    "Objective",
    "ObjectiveParams",
    "RiskAdjustedExpectancy",
    "make_objective",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectiveParams:
    """The knobs every objective accepts."""

    min_trades: int = 20
    drawdown_weight: float = 0.5  # lambda


class Objective(Protocol):
    """One scoring rule (see the module docstring for the contract)."""

    @property
    def name(self) -> str: ...

    def score(self, pips: Sequence[float]) -> float:
        """Higher is better; NaN when the evidence is insufficient."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskAdjustedExpectancy:
    """``(expectancy - lambda * max_drawdown / n) / sd`` (the default)."""

    params: ObjectiveParams
    name: str = "risk_adjusted_expectancy"

    def score(self, pips: Sequence[float]) -> float:
        s = summarize(pips)
        if s.n < self.params.min_trades or not (math.isfinite(s.std) and s.std > 0):
            return math.nan
        penalty = self.params.drawdown_weight * max_drawdown(pips) / s.n
        return (s.expectancy - penalty) / s.std


@dataclass(frozen=True, slots=True, kw_only=True)
class Expectancy:
    """Plain mean P/L per trade (pips): no risk adjustment, for comparison runs."""

    params: ObjectiveParams
    name: str = "expectancy"

    def score(self, pips: Sequence[float]) -> float:
        s = summarize(pips)
        return s.expectancy if s.n >= self.params.min_trades else math.nan


OBJECTIVES: Mapping[str, Callable[[ObjectiveParams], Objective]] = {
    "risk_adjusted_expectancy": lambda p: RiskAdjustedExpectancy(params=p),
    "expectancy": lambda p: Expectancy(params=p),
}


def make_objective(name: str, params: ObjectiveParams) -> Objective:
    """The objective registered as ``name`` (ConfigError listing the known ones otherwise)."""
    try:
        factory = OBJECTIVES[name]
    except KeyError:
        raise ConfigError(f"unknown objective {name!r}; known: {sorted(OBJECTIVES)}") from None
    return factory(params)
