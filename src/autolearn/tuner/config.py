"""The tuner's configuration: thresholds for sufficiency, rules, the judge, limits and pacing.

Defaults live here, in the dataclass, and nowhere else. An optional operator YAML overrides
them; unknown keys, wrong types and out-of-range values are collected and raised as one
``ConfigError`` (a typo in a risk limit must never fall back to a default silently).

Pure apart from :func:`load_tuner_config`, which reads the optional YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from autolearn.core.lifecycle import FlightSettings

__all__ = ["OnFail", "TunerConfig", "load_tuner_config", "parse_tuner_config"]


class OnFail(StrEnum):
    """What a failed change leads to after its rollback."""

    ROLLBACK = "rollback"  # back to LKG, then a cooldown for the family
    SHADOW = "shadow"  # back to LKG, then the whole tuner runs in shadow for ``shadow_period``


@dataclass(frozen=True, slots=True, kw_only=True)
class TunerConfig:
    """Every tuner threshold. Durations are timedeltas, P/L thresholds in pips."""

    # sufficiency (freeze)
    min_trades: int = 100  # relevant trades since the family's last change
    min_strategy_trades: int = 20  # per micro strategy, for its own entry knob
    min_exit_reason_share: float = 0.7  # share of relevant trades with the bot's exit reason
    min_regime_label_share: float = 0.7  # share of relevant trades with any regime label
    min_target_regime_share: float = 0.2  # share of labelled trades in the target regime
    stale_after: timedelta = timedelta(hours=6)
    # Evidence counts from the family's last decision, however long ago (a bot closing 300
    # trades a month needs weeks for 100), read back at most this far.
    max_lookback: timedelta = timedelta(days=45)
    # rules
    confidence: float = 0.9  # of the expectancy / share intervals the rules read
    ev_tighten_below: float = 0.0  # interval's upper end below this: tighten entries
    ev_loosen_above: float = 0.5  # interval's lower end above this: loosen entries
    exit_pockets: tuple[str, ...] = ("scalp",)
    micro_pocket: str = "micro"
    target_regime: str = "quiet_low_vol"
    max_same_direction_steps: int = 3  # K: consecutive same-direction steps without a pass
    max_in_flight: int = 1  # families judged at once (more would confound attribution)
    # the change in flight: arms, judge, hard limits, deadline (shared by every learner)
    flight: FlightSettings = field(default_factory=FlightSettings)
    on_fail: OnFail = OnFail.ROLLBACK
    shadow_period: timedelta = timedelta(hours=24)  # with on_fail=shadow
    # counterfactual entry knobs (registry ``score``/``admits``; issue 12). The evidence is
    # every logged signal of the lookback replayed on the candles, whatever config was live:
    # it does not restart at each change, which is what lets a family step within days.
    cf_lookback: timedelta = timedelta(days=30)
    # How often a family re-evaluates: the evidence is per day, so more looks add little but
    # multiply the chances of a false move on nearly identical data.
    cf_every: timedelta = timedelta(hours=6)
    # of the confirmation-half interval (choose_threshold). 0.99, not 0.95: the family looks
    # every cf_every at evidence that grows by the day, and each look is another chance of a
    # false move (bench/bench_counterfactual_tuner.py, scenario null)
    cf_confidence: float = 0.99
    cf_min_days: int = 6  # days with signals before any choice
    cf_spread_pips: float = 1.0  # cost per fill when the candles carry no spread
    cf_timeout_bars: int = 30  # for a signal without timeout_s
    cf_mismatch_tolerance_pips: float = 1.5  # mean |simulated - recorded| of taken signals
    cf_max_gap: timedelta = timedelta(hours=1)  # a longer hole in trading hours freezes
    # The live guardrail (core.judge.judge_forecast): candidate trades that confirm a forecast
    # nobody contradicted, and the width of the forecast band in standard errors.
    cf_confirm_trades: int = 40
    cf_band_z: float = 2.0
    cf_contradicted_freeze: timedelta = timedelta(days=14)  # the family waits for a human

    def problems(self) -> list[str]:
        """Every invariant this config breaks (empty when valid)."""
        found: list[str] = []
        for name in ("min_trades", "min_strategy_trades"):
            if getattr(self, name) < 1:
                found.append(f"{name}: must be >= 1, got {getattr(self, name)!r}")
        for name in (
            "min_exit_reason_share",
            "min_regime_label_share",
            "min_target_regime_share",
            "confidence",
        ):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                found.append(f"{name}: 0 <= {name} <= 1 must hold, got {value!r}")
        if self.max_same_direction_steps < 1:
            found.append("max_same_direction_steps: must be >= 1")
        if self.max_in_flight < 1:
            found.append("max_in_flight: must be >= 1")
        if self.ev_tighten_below > self.ev_loosen_above:
            found.append("ev_tighten_below: must be <= ev_loosen_above")
        found += self._cf_problems()
        return found

    def _cf_problems(self) -> list[str]:
        found: list[str] = []
        if not 0 < self.cf_confidence < 1:
            found.append(
                f"cf_confidence: 0 < cf_confidence < 1 must hold, got {self.cf_confidence!r}"
            )
        for name in ("cf_min_days", "cf_timeout_bars"):
            if getattr(self, name) < 1:
                found.append(f"{name}: must be >= 1, got {getattr(self, name)!r}")
        if self.cf_confirm_trades < 2:
            found.append(f"cf_confirm_trades: must be >= 2, got {self.cf_confirm_trades!r}")
        for name in ("cf_spread_pips", "cf_band_z"):
            if not getattr(self, name) >= 0:
                found.append(f"{name}: must be >= 0, got {getattr(self, name)!r}")
        if not self.cf_mismatch_tolerance_pips > 0:
            found.append("cf_mismatch_tolerance_pips: must be > 0")
        for name in ("cf_lookback", "cf_every", "cf_max_gap", "cf_contradicted_freeze"):
            if getattr(self, name) <= timedelta(0):
                found.append(f"{name}: must be > 0, got {getattr(self, name)!r}")
        return found


def parse_tuner_config(doc: object, source: str = "<tuner config>") -> TunerConfig:
    """Validate a loaded YAML document into a TunerConfig (all problems at once)."""
    # Lazy: the validator (pydantic) costs ~50 ms of every run that has no tuner YAML.
    from autolearn.core.config_loader import load_config

    return load_config(TunerConfig, doc, source)


def load_tuner_config(path: Path | None) -> TunerConfig:
    """The defaults, overridden by the YAML at ``path`` when given."""
    if path is None:
        return TunerConfig()
    from autolearn.adapters.yamlio import load_yaml

    return parse_tuner_config(load_yaml(path), str(path))
