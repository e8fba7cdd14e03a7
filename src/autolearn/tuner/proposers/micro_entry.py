"""Family ``micro.entry``: each micro strategy's entry threshold, from its own expectancy.

Per knob ``strategies.<Strategy>.<param>``: the Student-t interval of that strategy's mean P/L
(pips) over its trades since the family's last change. Whole interval below
``ev_tighten_below``: tighten (one max_step, stricter entries); whole interval above
``ev_loosen_above``: loosen by one grid step; otherwise keep. A strategy with fewer than
``min_strategy_trades`` trades keeps its knob (``strategy_coverage``); the original moved all
four on one pooled 15-minute mean.

Every registered micro knob is "higher = stricter" (confidence, z-score, percentile, re-entry
block); a knob added with the other sense must be listed in ``_LOOSER_WHEN_HIGHER``.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from autolearn.core.knobs import KnobSpec, KnobValue
from autolearn.core.metrics import expectancy_interval, pnl, summarize
from autolearn.core.model import Trade
from autolearn.tuner.config import TunerConfig
from autolearn.tuner.proposers._base import FamilyEvidence, KnobProposal, Signal, max_steps

__all__ = ["MicroEntryProposer", "strategy_of"]

_LOOSER_WHEN_HIGHER: frozenset[str] = frozenset()


def strategy_of(knob: str) -> str:
    """``strategies.MomentumPulse.min_confidence`` -> ``MomentumPulse``."""
    parts = knob.split(".")
    return parts[1] if len(parts) >= 3 and parts[0] == "strategies" else ""


@dataclass(frozen=True, slots=True)
class MicroEntryProposer:
    """Per-strategy expectancy-interval rules for ``micro.entry``."""

    family: str = "micro.entry"
    signals: tuple[Signal, ...] = (Signal.STRATEGY_OUTCOME,)

    def pockets(self, config: TunerConfig) -> tuple[str, ...]:
        return (config.micro_pocket,)

    def relevant(self, trade: Trade, config: TunerConfig) -> bool:
        return trade.pocket == config.micro_pocket

    def propose(
        self,
        trades: Sequence[Trade],
        specs: Sequence[KnobSpec],
        current: Mapping[str, KnobValue],
        config: TunerConfig,
    ) -> FamilyEvidence:
        by_strategy: dict[str, list[float]] = {}
        for trade in trades:
            by_strategy.setdefault(trade.strategy, []).append(trade.pl_pips)
        proposals = []
        metrics: dict[str, object] = {}
        covered = present = 0
        for spec in specs:
            strategy = strategy_of(spec.name)
            values = by_strategy.get(strategy, [])
            present += bool(values)
            stats = summarize(values)
            low, high = expectancy_interval(values, config.confidence)
            metrics[strategy] = {
                "n": stats.n,
                "expectancy": stats.expectancy,
                "low": low,
                "high": high,
            }
            detail = (
                f"{strategy}: {stats.n} trades, expectancy {stats.expectancy:.3f} pips, "
                f"{config.confidence:.0%} interval [{low:.3f}, {high:.3f}]"
            )
            stricter = -1 if spec.name.rsplit(".", 1)[-1] in _LOOSER_WHEN_HIGHER else 1
            if stats.n < config.min_strategy_trades or math.isnan(high):
                code, steps = "strategy_coverage", 0
                detail += f" < min_strategy_trades {config.min_strategy_trades}"
            else:
                covered += 1
                if high < config.ev_tighten_below:
                    code, steps = "ev_below_band", stricter * max_steps(spec)
                elif low > config.ev_loosen_above:
                    code, steps = "ev_above_band", -stricter
                else:
                    code, steps = "ev_within_band", 0
            proposals.append(KnobProposal(knob=spec.name, steps=steps, code=code, detail=detail))
        freeze: tuple[tuple[str, str], ...] = ()
        names = sorted(strategy_of(s.name) for s in specs)
        seen = sorted(by_strategy)[:10]
        if specs and not present:
            freeze = (
                (
                    "signal_missing:strategy_outcome",
                    f"none of the strategies {names} appears in {len(trades)} trades "
                    f"(strategies seen: {seen})",
                ),
            )
        elif specs and not covered:
            freeze = (
                (
                    "strategy_coverage",
                    f"no strategy of {names} has {config.min_strategy_trades} trades",
                ),
            )
        metrics["all"] = summarize(pnl(trades)).as_dict()
        return FamilyEvidence(
            family=self.family, proposals=tuple(proposals), metrics=metrics, freeze=freeze
        )
