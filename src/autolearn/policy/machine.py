"""The policy state machine of one scope (a pocket, or a strategy within a pocket).

    active --(confidently losing)--> blocked --(shadow signals recover | block expires)-->
    probation (reduced size) --(enough good trades)--> active
    probation --(confidently losing | loss budget spent)--> blocked (longer: one more strike)

Hysteresis: a block needs the *upper* bound of the expectancy interval below ``block_below``;
leaving probation needs the *mean* at or above the stricter ``unblock_above``. Evidence is
counted only since the scope entered its current state, so the losses that caused a block can
never re-block a scope that has since recovered. A blocked scope makes no trades, which is why
the original's block never lifted (original-system.md 5.2): here shadow signals or the block's
expiry move it on.

Pure: no I/O, no clock (``now`` is a parameter).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from autolearn.core.metrics import expectancy_interval, summarize
from autolearn.core.timestamps import format_utc, parse_utc
from autolearn.policy.config import PolicyConfig

__all__ = ["Evidence", "ScopeState", "Status", "StepCode", "Transition", "step"]


class Status(StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"
    PROBATION = "probation"


class StepCode(StrEnum):
    """Why a scope is in its state after a step (persisted, logged, tested)."""

    OK = "ok"
    INSUFFICIENT = "insufficient_evidence"
    BLOCK_NEGATIVE = "block_negative_expectancy"
    STILL_BLOCKED = "still_blocked"
    SHADOW_STILL_BAD = "shadow_still_bad"
    SHADOW_RECOVERED = "shadow_recovered"
    BLOCK_EXPIRED = "block_expired"
    PROBATION_PENDING = "probation_pending"
    PROBATION_PASSED = "probation_passed"
    PROBATION_FAILED = "probation_failed"
    PROBATION_LOSS_BUDGET = "probation_loss_budget"
    OPERATOR_UNBLOCK = "operator_unblock"


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """A P/L sample summarized with uncertainty (NaN = no evidence, never bad evidence)."""

    n: int
    mean: float
    lower: float
    upper: float
    net: float
    profit_factor: float
    win_rate: float

    @classmethod
    def of(cls, values: Sequence[float], confidence: float) -> Evidence:
        stats = summarize(values)
        lower, upper = expectancy_interval(values, confidence)
        return cls(
            n=stats.n,
            mean=stats.expectancy,
            lower=lower,
            upper=upper,
            net=stats.net,
            profit_factor=stats.profit_factor,
            win_rate=stats.win_rate,
        )

    def as_dict(self) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, float):
                out[name] = (
                    round(value, 6)
                    if math.isfinite(value)
                    else (None if math.isnan(value) else (1e9 if value > 0 else -1e9))
                )
            else:
                out[name] = value
        return out

    def text(self) -> str:
        return (
            f"n={self.n} mean={self.mean:.3f} interval=[{self.lower:.3f}, {self.upper:.3f}] "
            f"net={self.net:.2f} pf={self.profit_factor:.3f} win={self.win_rate:.3f}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ScopeState:
    """Where one scope stands. ``since``: when it entered ``status``; ``until``: block end."""

    status: Status = Status.ACTIVE
    reason: str = StepCode.OK.value
    since: datetime | None = None
    until: datetime | None = None
    size_mult: float = 1.0
    strikes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "reason": self.reason,
            "since": format_utc(self.since) if self.since else None,
            "until": format_utc(self.until) if self.until else None,
            "size_mult": self.size_mult,
            "strikes": self.strikes,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ScopeState:
        return cls(
            status=Status(doc.get("status", "active")),
            reason=str(doc.get("reason", "")),
            since=parse_utc(doc["since"]) if doc.get("since") else None,
            until=parse_utc(doc["until"]) if doc.get("until") else None,
            size_mult=float(doc.get("size_mult", 1.0)),
            strikes=int(doc.get("strikes", 0)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition:
    """One scope's step: before and after status, with the code and the numbers."""

    scope: str
    before: Status
    after: Status
    code: StepCode
    detail: str

    @property
    def changed(self) -> bool:
        return self.before is not self.after


def step(
    state: ScopeState,
    trades: Evidence,
    shadow: Evidence,
    cfg: PolicyConfig,
    now: datetime,
) -> tuple[ScopeState, StepCode, str]:
    """The next state of one scope, with its code and a detail that carries the numbers.

    ``trades`` holds the scope's P/L since it entered its state (within the lookback), in the
    configured units; ``shadow`` the outcomes (pips) of its shadow signals since then.
    """
    if state.status is Status.BLOCKED:
        return _from_blocked(state, shadow, cfg, now)
    if state.status is Status.PROBATION:
        return _from_probation(state, trades, cfg, now)
    return _from_active(state, trades, cfg, now)


def _from_active(
    state: ScopeState, ev: Evidence, cfg: PolicyConfig, now: datetime
) -> tuple[ScopeState, StepCode, str]:
    if ev.n < cfg.min_trades or math.isnan(ev.upper):
        return state, StepCode.INSUFFICIENT, f"{ev.text()} < min_trades {cfg.min_trades}"
    if ev.upper < cfg.block_below:
        return _block(state, now, cfg, StepCode.BLOCK_NEGATIVE, ev)
    return state, StepCode.OK, f"{ev.text()}; upper >= block_below {cfg.block_below}"


def _from_blocked(
    state: ScopeState, shadow: Evidence, cfg: PolicyConfig, now: datetime
) -> tuple[ScopeState, StepCode, str]:
    enough = shadow.n >= cfg.shadow_min_signals
    if enough and shadow.mean >= cfg.shadow_unblock_above_pips:
        detail = f"shadow {shadow.text()} >= {cfg.shadow_unblock_above_pips} pips"
        return (
            _probation(state, now, cfg, StepCode.SHADOW_RECOVERED),
            StepCode.SHADOW_RECOVERED,
            detail,
        )
    if enough and not math.isnan(shadow.upper) and shadow.upper < cfg.block_below:
        # Shadow evidence says the regime is still bad: do not let the block expire into it.
        until = max(state.until or now, now + cfg.block_for)
        detail = f"shadow {shadow.text()}; block extended to {format_utc(until)}"
        return replace(state, until=until), StepCode.SHADOW_STILL_BAD, detail
    if state.until is None or now >= state.until:
        ended = format_utc(state.until) if state.until else "-"
        detail = f"block ended at {ended}; shadow {shadow.text()}"
        return _probation(state, now, cfg, StepCode.BLOCK_EXPIRED), StepCode.BLOCK_EXPIRED, detail
    return state, StepCode.STILL_BLOCKED, f"until {format_utc(state.until)}; shadow {shadow.text()}"


def _from_probation(
    state: ScopeState, ev: Evidence, cfg: PolicyConfig, now: datetime
) -> tuple[ScopeState, StepCode, str]:
    if ev.n >= cfg.probation_fail_min and not math.isnan(ev.upper) and ev.upper < cfg.block_below:
        return _block(state, now, cfg, StepCode.PROBATION_FAILED, ev)
    if ev.n and ev.net <= -cfg.probation_max_loss:
        return _block(state, now, cfg, StepCode.PROBATION_LOSS_BUDGET, ev)
    if ev.n >= cfg.probation_trades and ev.mean >= cfg.unblock_above:
        active = ScopeState(
            status=Status.ACTIVE,
            reason=StepCode.PROBATION_PASSED.value,
            since=now,
            size_mult=1.0,
            strikes=max(0, state.strikes - 1),
        )
        return (
            active,
            StepCode.PROBATION_PASSED,
            f"{ev.text()} >= unblock_above {cfg.unblock_above}",
        )
    detail = f"{ev.text()}; needs n >= {cfg.probation_trades} and mean >= {cfg.unblock_above}"
    return state, StepCode.PROBATION_PENDING, detail


def _block(
    state: ScopeState, now: datetime, cfg: PolicyConfig, code: StepCode, ev: Evidence
) -> tuple[ScopeState, StepCode, str]:
    strikes = min(state.strikes + 1, _saturating_strike(cfg))
    duration = _block_duration(strikes, cfg)
    blocked = ScopeState(
        status=Status.BLOCKED,
        reason=code.value,
        since=now,
        until=now + duration,
        size_mult=0.0,
        strikes=strikes,
    )
    why = (
        f"net <= -{cfg.probation_max_loss} (probation loss budget)"
        if code is StepCode.PROBATION_LOSS_BUDGET
        else f"upper {ev.upper:.3f} < block_below {cfg.block_below}"
    )
    detail = f"{ev.text()}; {why}; blocked for {duration} (strike {strikes})"
    return blocked, code, detail


def _saturating_strike(cfg: PolicyConfig) -> int:
    """The first strike whose block lasts ``max_block``; strikes are capped there.

    Further strikes could not lengthen a block, and an unbounded count both overflowed the
    backoff (``timedelta``/float ``**`` after ~32 strikes) and made forgiveness (one strike off
    per passed probation) take as many passes as there had ever been failures.
    """
    base, cap, backoff = (
        cfg.block_for.total_seconds(),
        cfg.max_block.total_seconds(),
        cfg.block_backoff,
    )
    if backoff <= 1 or base >= cap:
        return 1
    exponent = max(0, math.ceil(math.log(cap / base) / math.log(backoff)))
    # The float log may land one off the exact smallest exponent; one step each way settles it.
    if exponent > 0 and base * backoff ** (exponent - 1) >= cap:
        exponent -= 1
    elif base * backoff**exponent < cap:
        exponent += 1
    return exponent + 1


def _block_duration(strikes: int, cfg: PolicyConfig) -> timedelta:
    """``block_for * block_backoff ** (strikes - 1)`` capped at ``max_block``; never overflows."""
    exponent = min(max(strikes, 1), _saturating_strike(cfg)) - 1
    seconds = cfg.block_for.total_seconds() * cfg.block_backoff**exponent
    if seconds >= cfg.max_block.total_seconds():
        return cfg.max_block
    return timedelta(seconds=seconds)


def _probation(state: ScopeState, now: datetime, cfg: PolicyConfig, code: StepCode) -> ScopeState:
    return ScopeState(
        status=Status.PROBATION,
        reason=code.value,
        since=now,
        size_mult=cfg.probation_size,
        strikes=state.strikes,
    )
