"""The autotune configuration: the search, the folds, the objective, the gates, the judge.

Defaults live in the dataclass and nowhere else; the optional operator YAML goes through the
one strict loader, ``core.config_loader`` (unknown keys and bad types are one ``ConfigError``).
Pure apart from :func:`load_autotune_config`, which reads the optional YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from autolearn.backtest import STRATEGIES
from autolearn.backtest._parsers import OANDA_GRANULARITY_S
from autolearn.core.config_loader import load_config
from autolearn.core.lifecycle import FlightSettings

__all__ = ["AutotuneConfig", "load_autotune_config"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AutotuneConfig:
    """Every autotune setting (durations are timedeltas, P/L in pips)."""

    family: str = "autotune.TrendMA"  # the registry family this mechanism owns
    live_strategy: str = "TrendMA"  # the bot's strategy reading the knobs (its trades judge)
    engine_strategy: str = "sma_cross"  # the backtest engine's model of it
    # knob name suffix (after "strategies.<live_strategy>.") -> engine parameter
    knob_map: tuple[tuple[str, str], ...] = (
        ("fast_window", "fast"),
        ("slow_window", "slow"),
        ("sl_pips", "sl_pips"),
        ("tp_pips", "tp_pips"),
    )
    # data
    candles_path: str = ""  # candle file (any format load_candles reads); --candles wins
    # the ledger's candle store (preferred over candles_path when it has recent bars)
    instrument: str = "USD_JPY"
    granularity: str = "M1"
    window: timedelta = timedelta(days=30)  # recent candles the study runs on
    max_candle_age: timedelta = timedelta(days=3)  # newest candle older than this: hold
    spread_pips: float = 0.8  # the engine's round-trip cost
    # walk-forward
    folds: int = 4
    validate_fraction: float = 0.3
    embargo_bars: int = 60
    # fewest training bars a fold may have: fewer cannot warm the indicators up and hold
    # min_trades trades, so the run holds (folds_too_short) before searching instead of pruning
    # every trial (H1, a 30-day window, 4 folds and a 60-bar embargo leave ~28)
    min_train_bars: int = 100
    # search
    n_trials: int = 60  # total trials of the study (all workers together)
    seed: int = 42  # the k-th worker to join a study (any host) seeds TPE with seed + k
    objective: str = "risk_adjusted_expectancy"
    min_trades: int = 20  # per pooled train / validation set
    drawdown_weight: float = 0.5
    # storage robustness (Optuna RDB heartbeat: a dead worker's trial is failed and re-queued)
    heartbeat_interval_s: int = 30
    grace_period_s: int = 120
    max_retry: int = 2
    # gates a winner must pass to be proposed
    min_dsr: float = 0.9  # deflated Sharpe of the winner's in-sample trades
    min_oos_improvement: float = 0.0  # candidate OOS score - incumbent OOS score must exceed
    # the change in flight: arms, judge, hard limits, deadline (shared by every learner)
    flight: FlightSettings = field(
        default_factory=lambda: FlightSettings(cooldown=timedelta(hours=12))
    )

    def problems(self) -> list[str]:
        """Every invariant this config breaks (empty when valid)."""
        found: list[str] = []
        if self.engine_strategy not in STRATEGIES:
            found.append(
                f"engine_strategy: unknown {self.engine_strategy!r}; known: {sorted(STRATEGIES)}"
            )
        for name in ("folds", "n_trials", "min_trades", "heartbeat_interval_s", "min_train_bars"):
            if getattr(self, name) < 1:
                found.append(f"{name}: must be >= 1, got {getattr(self, name)!r}")
        if self.grace_period_s <= self.heartbeat_interval_s:
            # too short a grace marks live trials failed (optuna#4234, #5470)
            found.append("grace_period_s: must exceed heartbeat_interval_s (several beats)")
        if not 0 < self.validate_fraction < 1:
            found.append(f"validate_fraction: must be in (0, 1), got {self.validate_fraction!r}")
        if not 0 <= self.min_dsr < 1:
            found.append(f"min_dsr: must be in [0, 1), got {self.min_dsr!r}")
        if self.spread_pips < 0 or self.drawdown_weight < 0 or self.embargo_bars < 0:
            found.append("spread_pips, drawdown_weight and embargo_bars: must be >= 0")
        if self.granularity not in OANDA_GRANULARITY_S:
            found.append(
                f"granularity: unknown {self.granularity!r}; known: {sorted(OANDA_GRANULARITY_S)}"
            )
        if any(len(pair) != 2 for pair in self.knob_map):
            found.append("knob_map: expected [knob_suffix, engine_param] pairs")
        return found

    def knob_names(self) -> dict[str, str]:
        """Full knob name -> engine parameter."""
        prefix = f"strategies.{self.live_strategy}."
        return {prefix + suffix: param for suffix, param in self.knob_map}


def load_autotune_config(path: Path | None) -> AutotuneConfig:
    """The defaults, overridden by the YAML at ``path`` when given."""
    if path is None:
        return AutotuneConfig()
    from autolearn.adapters.yamlio import load_yaml

    return load_config(AutotuneConfig, load_yaml(path), str(path))
