"""Sufficiency: is there enough, fresh, well-labelled evidence for a family to move at all?

Each failed check is a finding with a stable code and the numbers. Any finding freezes the family:
nothing in it moves, and the run records every finding (the original stopped at a silent
"share 0" when an input never appeared; here that is ``signal_missing:<signal>``).

Codes: ``stale_ledger``, ``min_trades``, ``pocket_coverage``, ``signal_missing:exit_reason``,
``exit_reason_coverage``, ``signal_missing:regime_label``, ``regime_label_coverage``,
``target_regime_coverage``. Per-strategy coverage is the micro proposer's own (it needs the
strategy of each knob).

Pure: no I/O, no clock (``now`` is a parameter).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from autolearn.core.model import Trade
from autolearn.tuner.config import TunerConfig
from autolearn.tuner.proposers import Proposer, Signal
from autolearn.tuner.proposers.alloc_share import regime_of

__all__ = ["Finding", "check_sufficiency", "ledger_staleness"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One failed sufficiency check."""

    code: str
    detail: str


def ledger_staleness(
    last_close_at: datetime | None, now: datetime, config: TunerConfig
) -> Finding | None:
    """``stale_ledger`` when the newest closed trade is older than ``stale_after``."""
    if last_close_at is None:
        return Finding(code="stale_ledger", detail="the ledger has no closed trade")
    age = now - last_close_at
    if age > config.stale_after:
        return Finding(
            code="stale_ledger",
            detail=f"newest close {last_close_at.isoformat()} is {age} old > {config.stale_after}",
        )
    return None


def check_sufficiency(
    proposer: Proposer, trades: Sequence[Trade], config: TunerConfig
) -> list[Finding]:
    """Every sufficiency finding for ``proposer``'s family on its relevant ``trades``."""
    found: list[Finding] = []
    n = len(trades)
    if n < config.min_trades:
        found.append(
            Finding(
                code="min_trades",
                detail=f"{n} relevant trades since the last change < {config.min_trades}",
            )
        )
    pockets_seen = {t.pocket for t in trades}
    missing = [p for p in proposer.pockets(config) if p not in pockets_seen]
    if missing:
        found.append(Finding(code="pocket_coverage", detail=f"no trades in pockets {missing}"))
    for signal in proposer.signals:
        if signal is Signal.EXIT_REASON:
            found += _share_check(
                sum(1 for t in trades if t.exit_reason),
                n,
                config.min_exit_reason_share,
                "exit_reason",
                "the bot's own exit reasons (hard_timeout, hazard_exit, scratch, ...); OANDA "
                "close reasons are not exit reasons",
            )
        elif signal is Signal.REGIME_LABEL:
            labelled = [t for t in trades if regime_of(t)]
            found += _share_check(
                len(labelled),
                n,
                config.min_regime_label_share,
                "regime_label",
                "regime_micro / regime_macro at entry (the pocket is never a regime)",
            )
            if labelled:
                target = sum(1 for t in labelled if regime_of(t) == config.target_regime)
                if target / len(labelled) < config.min_target_regime_share:
                    found.append(
                        Finding(
                            code="target_regime_coverage",
                            detail=(
                                f"{target}/{len(labelled)} labelled trades in "
                                f"{config.target_regime} < {config.min_target_regime_share:.0%}"
                            ),
                        )
                    )
    return found


def _share_check(k: int, n: int, minimum: float, signal: str, what: str) -> list[Finding]:
    if n and k == 0:
        return [
            Finding(
                code=f"signal_missing:{signal}",
                detail=f"none of {n} trades carries {what}: the rules cannot read it",
            )
        ]
    if n and k / n < minimum:
        return [
            Finding(
                code=f"{signal}_coverage",
                detail=f"{k}/{n} trades carry {signal} < {minimum:.0%}",
            )
        ]
    return []
