"""The proposer contract: one plug-in per knob family, evidence in, signed grid steps out.

A proposer reads the trades *relevant to its family* that were opened since the family's last
change and says, per knob, how many grid steps to move the **current** value (never the preset),
with a reason code and the numbers behind it. It declares the signals it needs, so sufficiency
can freeze the family loudly (``signal_missing``) when the data never carries them, instead of
reading an absent signal as "share 0" (the original's silent fixed point, original-system.md 5.1).

Contract (every implementation, checked by one parametrized test suite):
- pure and deterministic: no I/O, no clock, no randomness; same inputs, same output;
- evidence with uncertainty: a rule fires only when a whole interval (expectancy: Student-t;
  shares: Beta posterior) is past its threshold, never on a point estimate;
- ``steps`` is signed and at most ``max_step / step`` in size; bounds and grid are applied by
  the caller (``step_value``) and enforced again by the apply guard;
- one :class:`KnobProposal` per knob of the family in ``specs``, moving or not.

Must not: read or write state, look at other families' knobs, treat a pocket as a regime.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from autolearn.core.knobs import KnobSpec, KnobValue
from autolearn.core.model import Trade
from autolearn.tuner.config import TunerConfig

__all__ = ["FamilyEvidence", "KnobProposal", "Proposer", "Signal", "max_steps"]


class Signal(StrEnum):
    """Inputs a rule may need; sufficiency checks each declared one."""

    EXIT_REASON = "exit_reason"  # the bot's own exit reasons (hard_timeout, hazard_exit, ...)
    REGIME_LABEL = "regime_label"  # regime_micro / regime_macro at entry (never the pocket)
    STRATEGY_OUTCOME = "strategy_outcome"  # per-strategy P/L of the strategies the knobs belong to


@dataclass(frozen=True, slots=True, kw_only=True)
class KnobProposal:
    """Move ``knob`` by ``steps`` grid steps (0: keep), because ``code`` (numbers in detail)."""

    knob: str
    steps: int
    code: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FamilyEvidence:
    """A proposer's answer: per-knob proposals, the metrics it read, family-level freezes."""

    family: str
    proposals: tuple[KnobProposal, ...]
    metrics: dict[str, Any] = field(default_factory=dict)
    # (code, detail) findings that freeze the whole family, e.g. strategy_coverage
    freeze: tuple[tuple[str, str], ...] = ()


class Proposer(Protocol):
    """One knob family's rules (see the module docstring for the contract)."""

    @property
    def family(self) -> str:
        """The registry family name this proposer moves."""
        ...

    @property
    def signals(self) -> tuple[Signal, ...]:
        """Inputs its rules need (sufficiency freezes with ``signal_missing`` without them)."""
        ...

    def pockets(self, config: TunerConfig) -> tuple[str, ...]:
        """Pockets whose trades the family's rules read (coverage is checked on each)."""
        ...

    def relevant(self, trade: Trade, config: TunerConfig) -> bool:
        """Whether ``trade`` is evidence for this family (and for its judge)."""
        ...

    def propose(
        self,
        trades: Sequence[Trade],
        specs: Sequence[KnobSpec],
        current: Mapping[str, KnobValue],
        config: TunerConfig,
    ) -> FamilyEvidence:
        """Proposals for every knob in ``specs`` from the relevant ``trades``."""
        ...


def max_steps(spec: KnobSpec) -> int:
    """The largest number of grid steps one apply may move ``spec``."""
    if spec.step is None or spec.max_step is None:
        return 1
    return max(1, round(spec.max_step / spec.step))
