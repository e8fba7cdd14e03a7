"""The tuner's configuration: thresholds for sufficiency, rules, the judge, limits and pacing.

Defaults live here, in the dataclass, and nowhere else. An optional operator YAML overrides
them; unknown keys, wrong types and out-of-range values are collected and raised as one
``ConfigError`` (a typo in a risk limit must never fall back to a default silently).

Pure apart from :func:`load_tuner_config`, which reads the optional YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from autolearn.core.judge import HardLimits, JudgeParams
from autolearn.core.registry import parse_duration
from autolearn.errors import ConfigError

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
    lookback: timedelta = timedelta(hours=48)  # the history one cycle reads for proposals
    baseline_lookback: timedelta = timedelta(hours=24)  # LKG trades before an in-flight change
    # rules
    confidence: float = 0.9  # of the expectancy / share intervals the rules read
    ev_tighten_below: float = 0.0  # interval's upper end below this: tighten entries
    ev_loosen_above: float = 0.5  # interval's lower end above this: loosen entries
    exit_pockets: tuple[str, ...] = ("scalp",)
    micro_pocket: str = "micro"
    target_regime: str = "quiet_low_vol"
    max_same_direction_steps: int = 3  # K: consecutive same-direction steps without a pass
    max_in_flight: int = 1  # families judged at once (more would confound attribution)
    # judge
    judge: JudgeParams = field(default_factory=JudgeParams)
    hard_limits: HardLimits = field(default_factory=HardLimits)
    deadline: timedelta = timedelta(hours=72)  # inconclusive past this reverts
    deadline_trades: int = 400  # ... or past this many candidate trades
    cooldown: timedelta = timedelta(hours=6)  # after a rollback, for the family
    on_fail: OnFail = OnFail.ROLLBACK
    shadow_period: timedelta = timedelta(hours=24)  # with on_fail=shadow

    def problems(self) -> list[str]:
        """Every invariant this config breaks (empty when valid)."""
        found: list[str] = []
        for name in ("min_trades", "min_strategy_trades", "deadline_trades"):
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
        return found


_DURATIONS = frozenset(
    {"stale_after", "lookback", "baseline_lookback", "deadline", "cooldown", "shadow_period"}
)
_NESTED = {"judge": JudgeParams, "hard_limits": HardLimits}


def parse_tuner_config(doc: object, source: str = "<tuner config>") -> TunerConfig:
    """Validate a loaded YAML document into a TunerConfig (all problems at once)."""
    if doc is None:
        return TunerConfig()
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    problems: list[str] = []
    known = {f.name for f in fields(TunerConfig)}
    kwargs: dict[str, Any] = {}
    for key, value in doc.items():
        if key not in known:
            problems.append(f"{key}: unknown key (known: {', '.join(sorted(known))})")
            continue
        try:
            kwargs[key] = _convert(str(key), value, problems)
        except (TypeError, ValueError) as exc:
            problems.append(f"{key}: {exc}, got {value!r}")
    if problems:
        raise ConfigError(f"invalid tuner config {source}:", problems)
    try:
        config = replace(TunerConfig(), **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid tuner config {source}: {exc}") from exc
    problems = config.problems()
    if problems:
        raise ConfigError(f"invalid tuner config {source}:", problems)
    return config


def _convert(key: str, value: object, problems: list[str]) -> object:
    if key in _DURATIONS:
        return parse_duration(value)
    if key in _NESTED:
        return _nested(key, value, problems)
    if key == "on_fail":
        return OnFail(str(value))
    if key == "exit_pockets":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError("expected a list of pocket names")
        return tuple(value)
    return _scalar(key, value)


def _nested(key: str, value: object, problems: list[str]) -> object:
    cls = _NESTED[key]
    if not isinstance(value, dict):
        raise TypeError("expected a mapping")
    inner = {f.name for f in fields(cls)}
    for sub in sorted(set(map(str, value)) - inner):
        problems.append(f"{key}.{sub}: unknown key (known: {', '.join(sorted(inner))})")
    return cls(**{k: v for k, v in value.items() if k in inner})


def _scalar(key: str, value: object) -> object:
    default = getattr(TunerConfig(), key)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise TypeError("expected a string")
        return value
    if isinstance(default, int) and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError("expected an integer")
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError("expected a number")
        return float(value)
    return value


def load_tuner_config(path: Path | None) -> TunerConfig:
    """The defaults, overridden by the YAML at ``path`` when given."""
    if path is None:
        return TunerConfig()
    from autolearn.adapters.yamlio import load_yaml

    return parse_tuner_config(load_yaml(path), str(path))
