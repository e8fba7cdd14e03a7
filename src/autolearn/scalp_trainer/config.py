"""The scalp trainer's configuration, and the strict YAML-to-dataclass parser both learners use.

Defaults live in the dataclass and nowhere else. An optional operator YAML overrides them;
unknown keys, wrong types and out-of-range values are collected and raised as one
``ConfigError`` (a typo in a risk limit must never fall back to a default silently).

Pure apart from :func:`load_scalp_config`, which reads the optional YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from autolearn.core.judge import HardLimits, JudgeParams
from autolearn.core.registry import parse_duration
from autolearn.errors import ConfigError
from autolearn.scalp_trainer.lifecycle import JudgeSettings

__all__ = ["ScalpTrainerConfig", "load_scalp_config", "parse_frozen_config"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScalpTrainerConfig:
    """Every scalp-trainer threshold. Durations are timedeltas, P/L thresholds in pips."""

    strategy: str = "M1Scalper"  # the only strategy whose trades are evidence (not the pocket)
    family: str = "scalp.m1"
    lookback: timedelta = timedelta(days=14)  # the most history one run reads
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
    # live judge of a change, rollback
    verdict: JudgeSettings = field(default_factory=JudgeSettings)

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
        if self.verdict.deadline_trades < 1:
            found.append("verdict.deadline_trades: must be >= 1")
        return found


T = TypeVar("T")
_NESTED: dict[str, type] = {
    "judge": JudgeParams,
    "hard_limits": HardLimits,
    "verdict": JudgeSettings,
}


def parse_frozen_config(cls: type[T], doc: object, source: str) -> T:
    """Validate a loaded YAML mapping into the frozen dataclass ``cls`` (all problems at once).

    Durations (``timedelta`` defaults) take ``"90s"``/``"3h"``/``"7d"``; nested dataclasses
    (``verdict``, ``judge``, ``hard_limits``) take mappings; ints, floats, strings and bools are
    checked against the default's type.
    """
    if doc is None:
        return cls()
    problems: list[str] = []
    value = _build(cls, doc, source, problems)
    if problems:
        raise ConfigError(f"invalid config {source}:", problems)
    check = getattr(value, "problems", None)
    found = check() if callable(check) else []
    if found:
        raise ConfigError(f"invalid config {source}:", list(found))
    return value


def _build(cls: type[T], doc: object, where: str, problems: list[str]) -> T:
    if not isinstance(doc, dict):
        problems.append(f"{where}: expected a mapping, got {type(doc).__name__}")
        return cls()
    default = cls()
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, raw in doc.items():
        name = str(key)
        if name not in known:
            problems.append(f"{where}.{name}: unknown key (known: {', '.join(sorted(known))})")
            continue
        current = getattr(default, name)
        try:
            kwargs[name] = _convert(name, current, raw, f"{where}.{name}", problems)
        except (TypeError, ValueError, ConfigError) as exc:
            problems.append(f"{where}.{name}: {exc}, got {raw!r}")
    try:
        return replace(default, **kwargs)  # type: ignore[type-var]
    except (TypeError, ValueError) as exc:
        problems.append(f"{where}: {exc}")
        return default


def _convert(name: str, current: object, raw: object, where: str, problems: list[str]) -> object:
    if isinstance(current, timedelta):
        return parse_duration(raw)
    if name in _NESTED:
        return _build(_NESTED[name], raw, where, problems)
    if isinstance(current, tuple):
        if not isinstance(raw, list):
            raise TypeError("expected a list")
        return tuple(raw)
    return _scalar(current, raw)


def _scalar(current: object, raw: object) -> object:
    # bool before int: True is an int in Python, and a risk limit of "true" is a typo
    if isinstance(current, bool) or isinstance(raw, bool):
        if not (isinstance(current, bool) and isinstance(raw, bool)):
            raise TypeError(f"expected {type(current).__name__}")
        return raw
    if isinstance(current, int):
        if not isinstance(raw, int):
            raise TypeError("expected an integer")
        return raw
    if isinstance(current, float):
        if not isinstance(raw, int | float):
            raise TypeError("expected a number")
        return float(raw)
    if isinstance(current, str) and isinstance(raw, str):
        return raw
    raise TypeError(f"expected {type(current).__name__}")


def load_scalp_config(path: Path | None) -> ScalpTrainerConfig:
    """The defaults, overridden by the YAML at ``path`` when given."""
    if path is None:
        return ScalpTrainerConfig()
    from autolearn.adapters.yamlio import load_yaml

    return parse_frozen_config(ScalpTrainerConfig, load_yaml(path), str(path))
