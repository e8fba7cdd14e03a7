"""Frozen values of the in-worker gates: verdicts, reasons and open positions.

A verdict is a value with codes, never an exception: the bot logs ``reasons`` verbatim and the
same ``code`` strings appear in logs, history and tests. The gates judge *entries only*; exits
are never gated (a lock that also stopped exits could turn a drawdown into a disaster: the
Freqtrade maintainers' argument, anchors.md A1).

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from autolearn.core.model import Side

__all__ = ["Gate", "GateResult", "OpenPosition", "Reason", "Verdict", "combine"]


class Gate(StrEnum):
    """Which gate produced a reason."""

    GATES = "gates"  # the combiner itself (ledger unreadable, internal error, bad input)
    POLICY = "policy"
    PERF_GUARD = "perf_guard"
    STAGE = "stage"
    REENTRY = "reentry"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reason:
    """One finding of one gate. ``blocking`` reasons deny the entry; ``hard`` ones in any mode."""

    gate: Gate
    code: str
    detail: str = ""
    blocking: bool = False
    hard: bool = False

    def to_record(self) -> dict[str, object]:
        return {
            "gate": self.gate.value,
            "code": self.code,
            "detail": self.detail,
            "blocking": self.blocking,
            "hard": self.hard,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class GateResult:
    """What one gate says: allowed or not, a size multiplier, and why."""

    allowed: bool
    size_multiplier: float = 1.0
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The answer to ``check_entry``: may the bot enter, at what size, and why.

    ``size_multiplier`` is the product of every gate's multiplier (0 when not allowed).
    """

    allowed: bool
    size_multiplier: float
    reasons: tuple[Reason, ...] = ()

    def __post_init__(self) -> None:
        if not math.isfinite(self.size_multiplier) or self.size_multiplier < 0:
            raise ValueError(f"size_multiplier must be finite and >= 0, got {self.size_multiplier}")

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)

    @property
    def blocking_codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons if r.blocking)

    def to_record(self) -> dict[str, object]:
        return {
            "allowed": self.allowed,
            "size_multiplier": round(self.size_multiplier, 6),
            "reasons": [r.to_record() for r in self.reasons],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenPosition:
    """A position the bot holds now (for the re-entry gate's open-stack caps).

    ``instrument`` gives the pip size of the adverse-excursion checks ("" = the gate's default).
    """

    strategy: str
    pocket: str
    side: Side
    units: int
    entry_price: float
    instrument: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "side", Side(self.side))
        if isinstance(self.units, bool) or not isinstance(self.units, int) or self.units <= 0:
            raise ValueError(f"units must be a positive int (absolute size), got {self.units!r}")
        if isinstance(self.entry_price, bool) or not isinstance(self.entry_price, int | float):
            raise ValueError(f"entry_price must be a number, got {self.entry_price!r}")
        if not math.isfinite(self.entry_price) or self.entry_price <= 0:
            raise ValueError(f"entry_price must be finite and > 0, got {self.entry_price!r}")


def combine(results: Sequence[GateResult]) -> Verdict:
    """One verdict from gate results: every gate must allow; multipliers multiply."""
    allowed = all(r.allowed for r in results)
    size = 1.0
    for r in results:
        size *= r.size_multiplier
    reasons = tuple(reason for r in results for reason in r.reasons)
    return Verdict(
        allowed=allowed, size_multiplier=max(size, 0.0) if allowed else 0.0, reasons=reasons
    )
