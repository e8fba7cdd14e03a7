"""One policy decision: trades + shadow signals + scope states + config + now -> Decision.

Scopes are every registered pocket, plus ``pocket/strategy`` for each strategy seen in the
lookback *or* already tracked (a blocked strategy makes no trades but must still be able to
recover from its shadow signals). Trades of pockets the registry does not know (``manual``,
``scalp_fast``...) are reported as skipped, never written (the original patched them).

The decision requests the policy's own knobs only, and only those whose value differs from
the current one: ``pockets.<p>.allow_new``, ``pockets.<p>.size_mult`` and the same under
``pockets.<p>.strategies.<key>.``, where ``<key>`` is the strategy's name escaped by
``autolearn.core.knob_names.strategy_key`` (plain names unchanged, ``Micro-VWAP`` ->
``Micro%2DVWAP``), so a strategy of any name is blockable. ``validate_overlay`` refuses anything
else.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autolearn.core.knob_names import is_strategy_key, strategy_knob_prefix
from autolearn.core.knobs import KnobValue
from autolearn.core.metrics import Units, pnl
from autolearn.core.model import ShadowSignal, Trade
from autolearn.core.registry import Registry
from autolearn.errors import ConfigError
from autolearn.policy.config import PolicyConfig
from autolearn.policy.machine import Evidence, ScopeState, Status, Transition, step

__all__ = ["Decision", "decide", "knobs_of", "scope_knob_prefix", "split_scope", "validate_overlay"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """States after the step, what changed and why, and the knob values to request."""

    states: dict[str, ScopeState]
    transitions: list[Transition]
    requested: dict[str, KnobValue]
    scopes: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changed(self) -> list[Transition]:
        return [t for t in self.transitions if t.changed]


def split_scope(scope: str) -> tuple[str, str | None]:
    """``"micro"`` -> ``("micro", None)``; ``"micro/TrendMA"`` -> ``("micro", "TrendMA")``."""
    pocket, _, strategy = scope.partition("/")
    return pocket, (strategy or None)


def scope_knob_prefix(scope: str) -> str:
    """``"micro/Micro-VWAP"`` -> ``"pockets.micro.strategies.Micro%2DVWAP."`` (escaped key)."""
    pocket, strategy = split_scope(scope)
    return strategy_knob_prefix(pocket, strategy)


def knobs_of(scope: str, state: ScopeState) -> dict[str, KnobValue]:
    """The knob values a scope's state stands for."""
    prefix = scope_knob_prefix(scope)
    return {
        f"{prefix}allow_new": state.status is not Status.BLOCKED,
        f"{prefix}size_mult": round(state.size_mult, 2),
    }


def validate_overlay(requested: Mapping[str, object], registry: Registry) -> None:
    """Refuse unknown pockets and keys (``ConfigError`` naming the known ones)."""
    problems = []
    known = ", ".join(registry.pockets)
    for name in requested:
        parts = name.split(".")
        if len(parts) < 3 or parts[0] != "pockets":
            problems.append(f"{name}: not a policy key (pockets.<pocket>.[strategies.<S>.]<key>)")
            continue
        if parts[1] not in registry.pockets:
            problems.append(f"{name}: unknown pocket {parts[1]!r} (known: {known})")
            continue
        ok_shape = (len(parts) == 3) or (len(parts) == 5 and parts[2] == "strategies")
        if not ok_shape or parts[-1] not in ("allow_new", "size_mult"):
            problems.append(f"{name}: unknown key (allowed: allow_new, size_mult)")
            continue
        if len(parts) == 5 and not is_strategy_key(parts[3]):
            problems.append(f"{name}: {parts[3]!r} is not a canonical strategy key")
            continue
        if registry.find(name) is None:
            problems.append(f"{name}: not registered in {registry.source}")
    if problems:
        raise ConfigError("invalid policy overlay:", problems)


def decide(
    *,
    trades: Sequence[Trade],
    signals: Sequence[ShadowSignal],
    states: Mapping[str, ScopeState],
    current: Mapping[str, KnobValue],
    cfg: PolicyConfig,
    units: Units,
    pockets: Sequence[str],
    now: datetime,
    default_of: Callable[[str], KnobValue | None],
) -> Decision:
    """Step every scope once and request the knob values its new state stands for.

    ``default_of(knob)`` is the registry default of a knob, ``None`` when it is not registered.
    """
    window_start = now - cfg.lookback
    by_scope: dict[str, list[Trade]] = defaultdict(list)
    unknown: dict[str, int] = defaultdict(int)
    for t in trades:
        if not window_start <= t.close_at < now:
            continue  # real timestamp compares (the original compared strings)
        if t.pocket not in pockets:
            unknown[t.pocket] += 1
            continue
        by_scope[t.pocket].append(t)
        if cfg.per_strategy:
            by_scope[f"{t.pocket}/{t.strategy}"].append(t)
    shadow_by_scope: dict[str, list[ShadowSignal]] = defaultdict(list)
    for s in signals:
        if s.outcome_pips is None or s.at >= now or s.pocket not in pockets:
            continue
        shadow_by_scope[s.pocket].append(s)
        if cfg.per_strategy:
            shadow_by_scope[f"{s.pocket}/{s.strategy}"].append(s)

    scopes = sorted(
        set(pockets)
        | set(by_scope)
        | {k for k in states if split_scope(k)[0] in pockets and (cfg.per_strategy or "/" not in k)}
    )
    new_states: dict[str, ScopeState] = {}
    transitions: list[Transition] = []
    requested: dict[str, KnobValue] = {}
    explained: dict[str, dict[str, Any]] = {}
    skipped: list[dict[str, Any]] = [
        {
            "scope": p,
            "code": "unknown_pocket",
            "trades": n,
            "detail": f"pocket {p!r} is not in the registry (known: {', '.join(pockets)})",
        }
        for p, n in sorted(unknown.items())
    ]
    for scope in scopes:
        before = states.get(scope, ScopeState())
        since = max(window_start, before.since) if before.since else window_start
        values = pnl([t for t in by_scope.get(scope, []) if t.close_at >= since], units)
        # Shadow evidence: since the state began, and never older than shadow_window.
        shadow_since = max(before.since or window_start, now - cfg.shadow_window)
        outcomes = [
            float(s.outcome_pips)
            for s in shadow_by_scope.get(scope, [])
            if s.at >= shadow_since and s.outcome_pips is not None
        ]
        ev = Evidence.of(values, cfg.confidence)
        sev = Evidence.shadow(outcomes, cfg)
        after, code, detail = step(before, ev, sev, cfg, now)
        new_states[scope] = after
        transitions.append(
            Transition(
                scope=scope, before=before.status, after=after.status, code=code, detail=detail
            )
        )
        explained[scope] = {
            "status_before": before.status.value,
            "status": after.status.value,
            "code": code.value,
            "detail": detail,
            "evidence_since": since.isoformat(),
            "trades": ev.as_dict(),
            "shadow": sev.as_dict(),
            "until": after.until.isoformat() if after.until else None,
            "size_mult": after.size_mult,
        }
        wanted = knobs_of(scope, after)
        defaults = {k: default_of(k) for k in wanted}
        if any(d is None for d in defaults.values()):
            skipped.append(
                {
                    "scope": scope,
                    "code": "strategy_not_registrable",
                    "detail": f"no registered knob matches {next(iter(wanted))!r} (the "
                    "registry lacks pockets.{pocket}.strategies.* knobs); state kept, nothing "
                    "written",
                }
            )
            continue
        for knob, value in wanted.items():
            if current.get(knob, defaults[knob]) != value:
                requested[knob] = value
    return Decision(
        states=new_states,
        transitions=transitions,
        requested=requested,
        scopes=explained,
        skipped=skipped,
    )
