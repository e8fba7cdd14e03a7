"""Family ``alloc.micro_share``: the micro pocket's capital share in the quiet low-vol regime.

Reads only trades whose *regime label* (``regime_micro``, else ``regime_macro``) is the target
regime: never the pocket name (the original's export set ``regime = pocket`` and then froze on
every live run, original-system.md 5.1). Student-t interval of the micro pocket's mean P/L in
that regime: whole interval above ``ev_loosen_above``: share up one step; whole interval below
``ev_tighten_below``: share down one step; otherwise keep.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from autolearn.core.knobs import KnobSpec, KnobValue
from autolearn.core.metrics import expectancy_interval, summarize
from autolearn.core.model import Trade
from autolearn.tuner.config import TunerConfig
from autolearn.tuner.proposers._base import FamilyEvidence, KnobProposal, Signal

__all__ = ["AllocShareProposer", "regime_of"]


def regime_of(trade: Trade) -> str:
    """The regime label a trade was opened in ("" when unlabelled). Never the pocket."""
    return trade.regime_micro or trade.regime_macro


@dataclass(frozen=True, slots=True)
class AllocShareProposer:
    """Regime-conditioned expectancy rule for ``alloc.micro_share``."""

    family: str = "alloc.micro_share"
    signals: tuple[Signal, ...] = (Signal.REGIME_LABEL,)

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
        values = [t.pl_pips for t in trades if regime_of(t) == config.target_regime]
        stats = summarize(values)
        low, high = expectancy_interval(values, config.confidence)
        detail = (
            f"{config.micro_pocket} in {config.target_regime}: {stats.n} trades, expectancy "
            f"{stats.expectancy:.3f} pips, {config.confidence:.0%} interval [{low:.3f}, {high:.3f}]"
        )
        if stats.n >= 2 and low > config.ev_loosen_above:
            code, steps = "regime_ev_above_band", 1
        elif stats.n >= 2 and high < config.ev_tighten_below:
            code, steps = "regime_ev_below_band", -1
        else:
            code, steps = "regime_ev_within_band", 0
        proposals = tuple(
            KnobProposal(knob=spec.name, steps=steps, code=code, detail=detail) for spec in specs
        )
        return FamilyEvidence(
            family=self.family,
            proposals=proposals,
            metrics={"n_regime": stats.n, "expectancy": stats.expectancy, "low": low, "high": high},
        )
