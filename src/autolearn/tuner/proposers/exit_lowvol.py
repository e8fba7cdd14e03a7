"""Family ``exit.lowvol``: the fast-scalp low-vol exit controller, from the bot's exit reasons.

Rules (the original's inventory, original-system.md 3.1, made evidence-based): each reads the
Beta-posterior interval of an exit-reason share among the relevant trades since the last change.

- ``hard_timeout`` share surely > 0.25: ``upper_bound_max_sec`` down by max_step; surely < 0.05:
  up one step;
- ``hazard_exit`` share surely > 0.25: the three hazard knobs up by max_step (fewer, costlier
  hazard exits). The original's "down" rule needs hazard tick counts the ledger does not carry,
  so it is not imitated: a missing input never moves a knob;
- ``scratch`` share surely > 0.55: grace up by max_step and one more supporting event; surely
  < 0.15: grace down one step and one event fewer.

Needs the bot's own ``exit_reason``; OANDA close reasons (MARKET_ORDER_TRADE_CLOSE, STOP_LOSS_ORDER)
are not exit reasons, and data with only those freezes the family with ``signal_missing``.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from autolearn.core.knobs import KnobSpec, KnobValue
from autolearn.core.metrics import win_rate_interval
from autolearn.core.model import Trade
from autolearn.tuner.config import TunerConfig
from autolearn.tuner.proposers._base import FamilyEvidence, KnobProposal, Signal, max_steps

__all__ = ["ExitLowvolProposer"]

# knob suffix -> (exit reason, share above which: direction, share below which: direction)
_RULES: dict[str, tuple[str, float, int, float, int]] = {
    "upper_bound_max_sec": ("hard_timeout", 0.25, -1, 0.05, +1),
    "hazard_debounce_ticks": ("hazard_exit", 0.25, +1, -1.0, 0),
    "hazard_cost_spread_base": ("hazard_exit", 0.25, +1, -1.0, 0),
    "hazard_cost_latency_base_ms": ("hazard_exit", 0.25, +1, -1.0, 0),
    "min_grace_before_scratch_ms": ("scratch", 0.55, +1, 0.15, -1),
    "scratch_requires_events": ("scratch", 0.55, +1, 0.15, -1),
}


@dataclass(frozen=True, slots=True)
class ExitLowvolProposer:
    """Exit-reason-share rules for ``exit.lowvol.*``."""

    family: str = "exit.lowvol"
    signals: tuple[Signal, ...] = (Signal.EXIT_REASON,)

    def pockets(self, config: TunerConfig) -> tuple[str, ...]:
        return config.exit_pockets

    def relevant(self, trade: Trade, config: TunerConfig) -> bool:
        return trade.pocket in config.exit_pockets

    def propose(
        self,
        trades: Sequence[Trade],
        specs: Sequence[KnobSpec],
        current: Mapping[str, KnobValue],
        config: TunerConfig,
    ) -> FamilyEvidence:
        labelled = [t for t in trades if t.exit_reason]
        n = len(labelled)
        shares: dict[str, dict[str, float | int]] = {}
        for reason in sorted({rule[0] for rule in _RULES.values()}):
            k = sum(1 for t in labelled if t.exit_reason == reason)
            low, high = win_rate_interval(k, n, config.confidence)
            shares[reason] = {"count": k, "share": k / n if n else 0.0, "low": low, "high": high}
        proposals = []
        for spec in specs:
            rule = _RULES.get(spec.name.rsplit(".", 1)[-1])
            if rule is None:
                proposals.append(KnobProposal(knob=spec.name, steps=0, code="no_rule", detail=""))
                continue
            reason, above, up_dir, below, down_dir = rule
            s = shares[reason]
            detail = (
                f"{reason} share {s['share']:.3f} ({config.confidence:.0%} interval "
                f"[{s['low']:.3f}, {s['high']:.3f}]) of {n} trades"
            )
            if n and s["low"] > above:
                steps = up_dir * max_steps(spec)  # the original's large step on this side
                proposals.append(
                    KnobProposal(knob=spec.name, steps=steps, code=f"{reason}_high", detail=detail)
                )
            elif n and down_dir and s["high"] < below:
                proposals.append(
                    KnobProposal(
                        knob=spec.name, steps=down_dir, code=f"{reason}_low", detail=detail
                    )
                )
            else:
                proposals.append(
                    KnobProposal(knob=spec.name, steps=0, code="share_within_band", detail=detail)
                )
        return FamilyEvidence(
            family=self.family,
            proposals=tuple(proposals),
            metrics={"n_labelled": n, "shares": shares},
        )
