"""The scalp trainer's configuration (read through the one strict loader, ``core.config_loader``).

Defaults live in the dataclass and nowhere else. An optional operator YAML overrides them;
unknown keys, wrong types and out-of-range values are collected and raised as one
``ConfigError`` (a typo in a risk limit must never fall back to a default silently).

Pure apart from :func:`load_scalp_config`, which reads the optional YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from autolearn.core.config_loader import load_config
from autolearn.core.lifecycle import FlightSettings
from autolearn.scalp_trainer.counterfactual import ExitCfSettings

__all__ = ["ScalpTrainerConfig", "load_scalp_config", "parse_frozen_config"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScalpTrainerConfig:
    """Every scalp-trainer threshold. Durations are timedeltas, P/L thresholds in pips."""

    strategy: str = "M1Scalper"  # the only strategy whose trades are evidence (not the pocket)
    family: str = "scalp.m1"
    # Evidence counts from the family's last decision (a strategy closing 75-300 trades a month
    # needs weeks for min_trades), read back at most this far.
    lookback: timedelta = timedelta(days=45)
    stale_after: timedelta = timedelta(hours=24)  # newest M1Scalper close older: freeze
    # sufficiency gate (the original: n >= 12 and a point win rate >= 0.35)
    min_trades: int = 40  # trades of the strategy opened since the family's last change
    min_decisive: int = 30  # trades past +-scratch_pips (the win-rate evidence)
    min_win_rate: float = 0.35  # the win-rate interval's upper end below this: freeze
    max_win_rate_width: float = 0.3  # a wider interval says nothing: freeze
    scratch_pips: float = 0.4  # |P/L| at or below this is a scratch, neither win nor loss
    # rules (original-system.md 3.8, read as evidence with uncertainty)
    confidence: float = 0.9  # of every interval the rules read
    sl_quantile: float = 0.85  # of the stop-out distances
    sl_margin_pips: float = 0.5
    tp_quantile: float = 0.55  # of the take-profit distances
    min_exit_samples: int = 15  # stop-outs / take-profits a distance rule needs
    # the change in flight: arms, judge, hard limits, deadline (shared by every learner)
    flight: FlightSettings = field(
        default_factory=lambda: FlightSettings(cooldown=timedelta(hours=12))
    )
    # the timeout knob on re-simulated trades (issue 12; ``scalp_trainer.counterfactual``)
    counterfactual: ExitCfSettings = field(default_factory=ExitCfSettings)

    def problems(self) -> list[str]:
        """Every invariant this config breaks (empty when valid)."""
        found: list[str] = []
        for name in ("min_trades", "min_decisive", "min_exit_samples"):
            if getattr(self, name) < 2:
                found.append(f"{name}: must be >= 2, got {getattr(self, name)!r}")
        for name in ("min_win_rate", "max_win_rate_width", "sl_quantile", "tp_quantile"):
            if not 0 <= getattr(self, name) <= 1:
                found.append(f"{name}: 0 <= {name} <= 1 must hold, got {getattr(self, name)!r}")
        if not 0 < self.confidence < 1:
            found.append(f"confidence: 0 < confidence < 1 must hold, got {self.confidence!r}")
        if self.scratch_pips < 0 or self.sl_margin_pips < 0:
            found.append("scratch_pips and sl_margin_pips: must be >= 0")
        found += self.counterfactual.problems()
        return found


T = TypeVar("T")


def parse_frozen_config(cls: type[T], doc: object, source: str) -> T:
    """Validate a loaded YAML mapping into the frozen dataclass ``cls`` (all problems at once).

    Kept for callers of the old name: :func:`autolearn.core.config_loader.load_config`.
    """
    return load_config(cls, doc, source)


def load_scalp_config(path: Path | None) -> ScalpTrainerConfig:
    """The defaults, overridden by the YAML at ``path`` when given."""
    if path is None:
        return ScalpTrainerConfig()
    from autolearn.adapters.yamlio import load_yaml

    return parse_frozen_config(ScalpTrainerConfig, load_yaml(path), str(path))
