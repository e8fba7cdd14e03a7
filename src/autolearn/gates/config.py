"""Gate (and policy) configuration: the packaged ``data/gates.yaml``, the bot's tracked
``config/gates.yaml`` over it, and runtime overrides over both (never written to a tracked file).

Parse, don't pass dicts: every section becomes a frozen dataclass through the one strict loader
(``autolearn.core.config_loader``); unknown keys are errors; all problems are collected with their
dotted path and raised together as one ``ConfigError``.
Per-pocket and per-strategy overrides are partial documents merged over the section and
validated at load time (so a typo in a threshold fails the load, not an entry at 3 a.m.).

This module reads YAML files; it must not decide anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from autolearn.adapters.yamlio import load_yaml, load_yaml_text
from autolearn.core.config_loader import config_to_doc, load_config
from autolearn.core.metrics import Units
from autolearn.errors import ConfigError
from autolearn.policy.config import PolicyConfig

__all__ = [
    "GATES_SCHEMA_VERSION",
    "FailFast",
    "GatesConfig",
    "LedgerErrorMode",
    "PerfGuardConfig",
    "PerfGuardRules",
    "PerfMode",
    "PerfScale",
    "ReentryConfig",
    "ReentryRule",
    "SameDirMode",
    "StageConfig",
    "load_gates_config",
    "merge_docs",
    "packaged_gates_text",
    "parse_gates_config",
]

GATES_SCHEMA_VERSION = 1
_T = TypeVar("_T")


class PerfMode(StrEnum):
    BLOCK = "block"  # every failing rule denies the entry
    REDUCE = "reduce"  # soft reasons shrink the size instead; hard reasons still deny
    WARN = "warn"  # soft reasons are only reported; hard reasons still deny


class LedgerErrorMode(StrEnum):
    BLOCK = "block"  # fail closed (default): no new entries while the ledger is unreadable
    ALLOW = "allow"  # fail open: allowed, with the reason attached


class SameDirMode(StrEnum):
    RETURN = "return"  # re-enter only after price came back (long: <= last close - d)
    FOLLOW = "follow"  # re-enter only in the move's direction (long: >= last close + d)
    BOTH = "both"  # either
    INHERIT = ""  # loss_dir_mode only: after a loss use same_dir_mode (return -> both)


@dataclass(frozen=True, slots=True, kw_only=True)
class FailFast:
    min_trades: int = 12
    pf: float = 0.75
    win: float = 0.40
    hard_pf: float = 0.30
    hard_require_both: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class PerfScale:
    """Two-sided size multiplier: +-step per criterion met/missed, clamped to [floor, cap]."""

    enabled: bool = True
    min_trades: int = 20
    pf_good: float = 1.15
    win_good: float = 0.55
    expectancy_good: float = 0.2
    step: float = 0.05
    floor: float = 0.8
    cap: float = 1.25

    def __post_init__(self) -> None:
        if not 0 <= self.floor <= 1 <= self.cap:
            raise ValueError(f"0 <= floor <= 1 <= cap must hold, got {self.floor}, {self.cap}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PerfGuardRules:
    """The perf guard's thresholds for one (pocket, strategy)."""

    enabled: bool = True
    mode: PerfMode = PerfMode.BLOCK
    lookback: timedelta = timedelta(days=3)
    min_trades: int = 12
    pf_min: float = 0.9
    win_min: float = 0.48
    expectancy_min: float | None = None
    failfast: FailFast = field(default_factory=FailFast)
    margin_closeout_hard: bool = True
    sl_loss_rate_max: float = 0.0  # 0 disables the stop-loss-rate rule
    sl_loss_min_trades: int = 12
    hourly: bool = False
    hourly_min_trades: int = 12
    reduce_mult: float = 0.5  # size in REDUCE mode when a soft rule fails
    scale: PerfScale = field(default_factory=PerfScale)

    def __post_init__(self) -> None:
        if self.lookback <= timedelta(0) or self.min_trades < 1:
            raise ValueError("lookback must be > 0 and min_trades >= 1")
        if not 0 <= self.reduce_mult <= 1:
            raise ValueError(f"reduce_mult: 0 <= x <= 1 must hold, got {self.reduce_mult}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PerfGuardConfig:
    """Rules plus partial overrides by pocket and by strategy (strategy wins)."""

    rules: PerfGuardRules = field(default_factory=PerfGuardRules)
    pockets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    strategies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class StageConfig:
    """Loss-streak and loss-cluster cooldowns (original-system.md 3.6), from close times."""

    enabled: bool = True
    flat_band: float = 0.0  # |P/L| <= band is flat: resets streaks, counts as neither
    loss_streak: int = 3
    cooldown_s: Mapping[str, float] = field(
        default_factory=lambda: {"macro": 900.0, "micro": 600.0, "scalp": 360.0}
    )
    default_cooldown_s: float = 600.0
    flip_fraction: float = 0.5  # opposite-direction guard: fraction of the cooldown...
    flip_min_s: float = 90.0  # ...but at least this
    streak_decay: timedelta = timedelta(minutes=120)
    strategy_loss_streak: int = 3
    cluster_window: timedelta = timedelta(minutes=480)
    cluster_min_losses: int = 2
    cluster_base_s: Mapping[str, float] = field(
        default_factory=lambda: {"macro": 300.0, "micro": 180.0, "scalp": 180.0}
    )
    cluster_default_base_s: float = 180.0
    cluster_count_weight: float = 0.3  # severity per loss beyond cluster_min_losses - 1
    cluster_loss_levels: tuple[float, ...] = (10.0, 20.0, 40.0)  # summed loss in units
    cluster_loss_weights: tuple[float, ...] = (0.2, 0.4, 0.6)
    cluster_max_factor: float = 4.0
    size_by_lose_streak: tuple[float, ...] = (1.0, 0.75, 0.6, 0.5)  # index = streak
    size_floor: float = 0.3

    def __post_init__(self) -> None:
        if len(self.cluster_loss_levels) != len(self.cluster_loss_weights):
            raise ValueError("cluster_loss_levels and cluster_loss_weights differ in length")
        if not self.size_by_lose_streak or any(not 0 <= x <= 1 for x in self.size_by_lose_streak):
            raise ValueError("size_by_lose_streak: a non-empty list of values in [0, 1]")
        if any(
            b > a
            for a, b in zip(
                self.size_by_lose_streak[:-1], self.size_by_lose_streak[1:], strict=True
            )
        ):
            raise ValueError("size_by_lose_streak must not increase (longer streak, smaller size)")
        if self.loss_streak < 1 or self.strategy_loss_streak < 1 or self.cluster_min_losses < 1:
            raise ValueError("loss_streak, strategy_loss_streak, cluster_min_losses must be >= 1")
        if self.cluster_max_factor < 1 or self.flat_band < 0:
            raise ValueError("cluster_max_factor must be >= 1 and flat_band >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReentryRule:
    """Per-strategy re-entry rule (original-system.md 3.7); defaults for every strategy."""

    enabled: bool = True
    cooldown_win_s: float = 60.0
    cooldown_loss_s: float = 180.0
    same_dir_reentry_pips: float = 1.8  # <= 0 disables the distance rule
    same_dir_mode: SameDirMode = SameDirMode.RETURN
    # The distance rule reads a close at most this old; an older one no longer applies (see
    # gates.yaml: in a trend the remembered level is never revisited and the rule locks out).
    same_dir_max_age: timedelta = timedelta(hours=4)
    loss_dir_mode: SameDirMode = SameDirMode.INHERIT
    loss_cooldown_allow_distance: bool = True
    allow_jst_hours: tuple[int, ...] = ()
    block_jst_hours: tuple[int, ...] = ()
    max_open_trades: int = 0  # soft stack cap, 0 = off
    max_open_trades_hard: int = 0  # hard stack cap, 0 = off
    max_open_adverse_pips: float = 0.0
    max_open_avg_adverse_pips: float = 0.0
    stack_reentry_pips: float = 0.0
    return_wait_bias: str = "neutral"  # favor | avoid | neutral

    def __post_init__(self) -> None:
        hours = (*self.allow_jst_hours, *self.block_jst_hours)
        if any(not 0 <= h <= 23 for h in hours):
            raise ValueError(f"JST hours must be 0..23, got {sorted(hours)}")
        if self.return_wait_bias not in ("favor", "avoid", "neutral"):
            raise ValueError(
                f"return_wait_bias must be favor|avoid|neutral, got {self.return_wait_bias!r}"
            )
        if self.cooldown_win_s < 0 or self.cooldown_loss_s < 0:
            raise ValueError("cooldowns must be >= 0")
        longest_cd = max(self.cooldown_win_s, self.cooldown_loss_s)
        if self.same_dir_max_age.total_seconds() <= longest_cd:
            raise ValueError(
                f"same_dir_max_age ({self.same_dir_max_age}) must be longer than every cooldown "
                f"({longest_cd:.0f}s), else the distance rule never applies (to turn it off, set "
                "same_dir_reentry_pips: 0)"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReentryConfig:
    enabled: bool = True
    defaults: ReentryRule = field(default_factory=ReentryRule)
    strategies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    bias_cooldown: Mapping[str, float] = field(
        default_factory=lambda: {"favor": 1.3, "avoid": 0.8, "neutral": 1.0}
    )
    bias_distance: Mapping[str, float] = field(
        default_factory=lambda: {"favor": 1.25, "avoid": 0.85, "neutral": 1.0}
    )
    min_cooldown_s: float = 15.0
    default_instrument: str = "USD_JPY"


@dataclass(frozen=True, slots=True, kw_only=True)
class GatesConfig:
    """The whole file: shared units, the policy section and the three gates."""

    schema_version: int = GATES_SCHEMA_VERSION
    units: Units = Units.PIPS
    on_ledger_error: LedgerErrorMode = LedgerErrorMode.BLOCK
    on_gate_error: LedgerErrorMode = LedgerErrorMode.BLOCK
    refresh_s: float = 1.0
    history_window: timedelta = timedelta(days=7)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    perf_guard: PerfGuardConfig = field(default_factory=PerfGuardConfig)
    stage: StageConfig = field(default_factory=StageConfig)
    reentry: ReentryConfig = field(default_factory=ReentryConfig)

    def __post_init__(self) -> None:
        if self.schema_version != GATES_SCHEMA_VERSION:
            raise ValueError(f"schema_version {self.schema_version} is not {GATES_SCHEMA_VERSION}")
        if self.refresh_s < 0 or not math.isfinite(self.refresh_s):
            raise ValueError(f"refresh_s must be >= 0, got {self.refresh_s}")

    def perf_rules(self, pocket: str, strategy: str) -> PerfGuardRules:
        """The perf guard rules of (pocket, strategy): section < pocket < strategy override."""
        return _resolve(
            self.perf_guard.rules,
            [self.perf_guard.pockets.get(pocket), self.perf_guard.strategies.get(strategy)],
            f"perf_guard[{pocket}/{strategy}]",
        )

    def reentry_rule(self, base_strategy: str) -> ReentryRule:
        """Defaults merged with the strategy's entry; an empty hour list inherits the default."""
        partial = dict(self.reentry.strategies.get(base_strategy) or {})
        for key in ("allow_jst_hours", "block_jst_hours"):
            if key in partial and not partial[key]:
                del partial[key]
        return _resolve(self.reentry.defaults, [partial], f"reentry.strategies.{base_strategy}")


def packaged_gates_text() -> str:
    return resources.files("autolearn").joinpath("data/gates.yaml").read_text(encoding="utf-8")


def merge_docs(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else in ``over`` replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_docs(out[key], value)
        else:
            out[key] = value
    return out


def load_gates_config(
    path: Path | None = None, runtime_overrides: Mapping[str, Any] | None = None
) -> GatesConfig:
    """Packaged defaults, then the tracked file at ``path`` (if any), then runtime overrides."""
    doc = load_yaml_text(packaged_gates_text(), "<packaged gates.yaml>")
    source = "<packaged gates.yaml>"
    if path is not None:
        tracked = load_yaml(path)
        if tracked is not None and not isinstance(tracked, Mapping):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        doc = merge_docs(doc, tracked or {})
        source = str(path)
    if runtime_overrides:
        doc = merge_docs(doc, runtime_overrides)
        source += " + runtime overrides"
    return parse_gates_config(doc, source)


def parse_gates_config(doc: object, source: str = "<gates config>") -> GatesConfig:
    """Validate a loaded document; ``ConfigError`` lists every problem with its dotted path."""
    if isinstance(doc, Mapping) and "perf_guard" in doc and isinstance(doc["perf_guard"], Mapping):
        # The perf guard section is flat in YAML (rules + pockets + strategies side by side).
        pg = dict(doc["perf_guard"])
        nested = {
            "rules": {k: v for k, v in pg.items() if k not in ("pockets", "strategies")},
            "pockets": pg.get("pockets") or {},
            "strategies": pg.get("strategies") or {},
        }
        doc = {**doc, "perf_guard": nested}
    try:
        config = load_config(GatesConfig, doc, source)
    except ConfigError as exc:
        raise ConfigError(f"invalid gates config {source}:", exc.problems) from exc
    # The overrides are partial documents (typed ``Mapping[str, Any]``, so the loader passes them
    # through): each is checked here merged over its section, as ``perf_rules`` will merge it.
    problems: list[str] = []
    for kind, table in (
        ("pockets", config.perf_guard.pockets),
        ("strategies", config.perf_guard.strategies),
    ):
        for name, partial in table.items():
            _resolve_into(config.perf_guard.rules, [partial], f"perf_guard.{kind}.{name}", problems)
    for name, partial in config.reentry.strategies.items():
        _resolve_into(config.reentry.defaults, [partial], f"reentry.strategies.{name}", problems)
    if problems:
        raise ConfigError(f"invalid gates config {source}:", problems)
    return config


# ---------------------------------------------------------------------------------------------
# Partial overrides: a section's document, the partials merged over it, through the loader


def _resolve(base: _T, partials: list[object], path: str) -> _T:
    problems: list[str] = []
    out = _resolve_into(base, partials, path, problems)
    if problems:
        raise ConfigError(f"invalid override {path}:", problems)
    return out


def _resolve_into(base: _T, partials: list[object], path: str, problems: list[str]) -> _T:
    present = [p for p in partials if p]
    if not present:
        return base
    doc = config_to_doc(base)
    for partial in present:
        if not isinstance(partial, Mapping):
            problems.append(f"{path}: expected a mapping, got {partial!r}")
            return base
        doc = merge_docs(doc, partial)
    try:
        return load_config(type(base), doc, path, path=path)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return base
