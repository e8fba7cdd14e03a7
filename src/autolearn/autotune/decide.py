"""The autotune gate: is the study's winner a proposal, and which bounded step of it?

Pure. Given the incumbent (the current knob values), the study's winner, the out-of-sample
(validation-block) evaluations of incumbent, winner and the bounded step toward the winner, and
the winner's deflated Sharpe, say ``apply`` with the requested values or ``hold`` with every
reason. Rules, in order:

1. a winner exists (at least one scored trial) and differs from the incumbent on the grid;
2. selection bias: the winner's in-sample deflated Sharpe (N trials, variance of their
   Sharpes) is at least ``min_dsr``;
3. out of sample, the winner beats the incumbent by more than ``min_oos_improvement``
   (an incumbent with too few trades to score counts as beaten only by a scored winner);
4. the registry's ``max_step`` bounds one apply: a far winner is approached one step at a time
   (each knob snapped to the grid and clipped toward the winner), and the step point itself
   must be a valid parameter set and also beat the incumbent out of sample — it is what goes
   live, so it needs its own evidence, not the winner's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autolearn.autotune.selection import DeflatedSharpe
from autolearn.autotune.study import Evaluation
from autolearn.core.knobs import KnobSpec, KnobValue, approach

__all__ = ["Gate", "Proposal", "bounded_step", "gate"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Proposal:
    """The knob values one apply may request, and how they relate to the winner."""

    values: dict[str, KnobValue]  # full family values after the step
    winner: dict[str, KnobValue]  # the winner snapped to the grid
    clipped: dict[str, str]  # knob -> "k of n grid steps" when max_step clipped it

    @property
    def is_winner(self) -> bool:
        return not self.clipped


def bounded_step(
    specs: Mapping[str, KnobSpec],
    current: Mapping[str, KnobValue],
    winner: Mapping[str, float],
) -> Proposal:
    """One apply's worth of movement from ``current`` toward ``winner`` (knob names)."""
    values: dict[str, KnobValue] = {}
    snapped: dict[str, KnobValue] = {}
    clipped: dict[str, str] = {}
    for knob, spec in specs.items():
        step = approach(spec, current[knob], winner[knob])
        values[knob] = step.proposed
        snapped[knob] = step.target
        if step.clipped:
            clipped[knob] = f"{step.steps} of {step.needed} grid steps (max_step)"
    return Proposal(values=values, winner=snapped, clipped=clipped)


@dataclass(frozen=True, slots=True, kw_only=True)
class Gate:
    """The verdict on the winner: ``apply`` (with ``requests``) or ``hold`` (with reasons)."""

    decision: str
    reasons: tuple[str, ...]
    requests: dict[str, KnobValue]


def _better(candidate: Evaluation, incumbent: Evaluation, margin: float) -> bool:
    if not math.isfinite(candidate.score):
        return False
    if not math.isfinite(incumbent.score):
        return True  # the incumbent cannot even be scored out of sample
    return candidate.score - incumbent.score > margin


def gate(
    *,
    current: Mapping[str, KnobValue],
    proposal: Proposal | None,
    step_valid: list[str],
    dsr: DeflatedSharpe | None,
    oos: Mapping[str, Evaluation],
    min_dsr: float,
    min_oos_improvement: float,
) -> Gate:
    """Apply the rules of the module docstring; every failed rule is a reason."""
    reasons: list[str] = []
    if proposal is None or dsr is None:
        return Gate(decision="hold", reasons=("no_scored_trial",), requests={})
    if all(proposal.winner[k] == current[k] for k in proposal.winner):
        return Gate(decision="hold", reasons=("winner_is_incumbent",), requests={})
    if not (math.isfinite(dsr.dsr) and dsr.dsr >= min_dsr):
        reasons.append(f"deflated_sharpe_below:{_fmt(dsr.dsr)}<{min_dsr}")
    if not _better(oos["winner"], oos["incumbent"], min_oos_improvement):
        reasons.append(
            f"oos_not_better:{_fmt(oos['winner'].score)}<={_fmt(oos['incumbent'].score)}"
        )
    if not proposal.is_winner:
        if step_valid:
            reasons.append("step_invalid:" + "; ".join(step_valid))
        elif not _better(oos["step"], oos["incumbent"], min_oos_improvement):
            reasons.append(
                f"step_oos_not_better:{_fmt(oos['step'].score)}<={_fmt(oos['incumbent'].score)}"
            )
    if reasons:
        return Gate(decision="hold", reasons=tuple(reasons), requests={})
    requests = {k: v for k, v in proposal.values.items() if v != current[k]}
    codes = ["apply", "approach_step" if proposal.clipped else "apply_winner"]
    return Gate(decision="apply", reasons=tuple(codes), requests=requests)


def _fmt(x: float) -> str:
    return f"{x:.4f}" if math.isfinite(x) else "nan"


def summary(oos: Mapping[str, Evaluation]) -> dict[str, Any]:
    """The OOS evaluations as record fields."""
    return {name: ev.to_record() for name, ev in oos.items()}
