"""Re-entry gate: per-strategy cooldowns and price distance after a close, JST-hour lists and
open-stack caps (original-system.md 3.7).

Order: bias scaling -> JST hour allow/block lists -> open stack (hard cap, soft caps with the
``stack_override`` when price is far enough better than the average entry) -> last close of
the same base strategy and direction (none: ``no_state``) -> cooldown by last result (after a
loss the cooldown may be overridden when the price distance is already met) -> distance, read
only while that close is younger than ``same_dir_max_age`` (``distance_expired``: in a trend the
remembered level is never revisited, and an unexpiring close locked a strategy out for months).
The rule comes from the tracked file plus runtime overrides; this module never writes either.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from autolearn.core.model import Side, pip_size
from autolearn.gates.config import ReentryConfig, ReentryRule, SameDirMode
from autolearn.gates.model import Gate, GateResult, OpenPosition, Reason

__all__ = ["JST", "LastClose", "base_strategy", "distance_ok", "evaluate_reentry"]

JST = timezone(timedelta(hours=9), "JST")


def base_strategy(strategy: str) -> str:
    """``TrendMA-bear`` -> ``TrendMA`` (the part before the first ``-``)."""
    return strategy.split("-", 1)[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class LastClose:
    """The newest close of a (base strategy, side)."""

    close_at: datetime
    close_price: float
    pl_pips: float
    instrument: str

    @property
    def is_loss(self) -> bool:
        return self.pl_pips < 0

    @property
    def is_win(self) -> bool:
        return self.pl_pips > 0


def distance_ok(mode: SameDirMode, side: Side, price: float, close: float, d_price: float) -> bool:
    """Whether ``price`` is far enough from the last close in the mode's direction."""
    moved = (price - close) * side.sign  # > 0: price moved in the position's favour
    back = -moved >= d_price - 1e-12
    onward = moved >= d_price - 1e-12
    if mode is SameDirMode.RETURN:
        return back
    if mode is SameDirMode.FOLLOW:
        return onward
    return back or onward


def _block(code: str, detail: str, *, hard: bool = False) -> GateResult:
    reason = Reason(gate=Gate.REENTRY, code=code, detail=detail, blocking=True, hard=hard)
    return GateResult(allowed=False, size_multiplier=0.0, reasons=(reason,))


def _ok(code: str, detail: str) -> GateResult:
    return GateResult(allowed=True, reasons=(Reason(gate=Gate.REENTRY, code=code, detail=detail),))


def _stack(
    rule: ReentryRule, side: Side, price: float, stack: Sequence[OpenPosition], pip: float
) -> GateResult | None:
    if not stack:
        return None
    n = len(stack)
    hard_cap = rule.max_open_trades_hard or 0
    if hard_cap and n >= hard_cap:
        return _block("open_hard_cap", f"{n} open >= hard cap {hard_cap}", hard=True)
    adverse = [(p.entry_price - price) * side.sign / pip for p in stack]  # > 0: under water
    units = sum(p.units for p in stack)
    avg_entry = sum(p.entry_price * p.units for p in stack) / units if units else price
    soft = None
    if rule.max_open_trades and n >= rule.max_open_trades:
        soft = ("open_stack", f"{n} open >= {rule.max_open_trades}")
    elif rule.max_open_adverse_pips and max(adverse) >= rule.max_open_adverse_pips:
        soft = ("open_adverse", f"worst open {max(adverse):.1f} pips adverse")
    elif rule.max_open_avg_adverse_pips and sum(adverse) / n >= rule.max_open_avg_adverse_pips:
        soft = ("open_avg_adverse", f"average open {sum(adverse) / n:.1f} pips adverse")
    if soft is None:
        return None
    better = (avg_entry - price) * side.sign / pip
    if rule.stack_reentry_pips and better >= rule.stack_reentry_pips:
        return _ok("stack_override", f"{soft[0]} overridden: {better:.1f} pips better than avg")
    return _block(*soft)


def evaluate_reentry(
    *,
    cfg: ReentryConfig,
    rule: ReentryRule,
    side: Side,
    price: float,
    now: datetime,
    last: LastClose | None,
    stack: Sequence[OpenPosition],
) -> GateResult:
    """The re-entry verdict for one entry (``stack``: open positions of the same base and side)."""
    if not cfg.enabled or not rule.enabled:
        return GateResult(allowed=True)
    cd_scale = cfg.bias_cooldown.get(rule.return_wait_bias, 1.0)
    dist_scale = cfg.bias_distance.get(rule.return_wait_bias, 1.0)
    hour = now.astimezone(JST).hour
    if rule.allow_jst_hours and hour not in rule.allow_jst_hours:
        return _block("time_filter", f"JST hour {hour} not in {list(rule.allow_jst_hours)}")
    if hour in rule.block_jst_hours:
        return _block("time_block", f"JST hour {hour} in {list(rule.block_jst_hours)}")
    instrument = last.instrument if last else cfg.default_instrument
    pip = pip_size(next((p.instrument for p in stack if p.instrument), instrument))
    stacked = _stack(rule, side, price, stack, pip)
    if stacked is not None and not stacked.allowed:
        return stacked
    if last is None:
        return stacked or _ok("no_state", "no earlier close for this strategy and side")
    d_pips = rule.same_dir_reentry_pips * dist_scale
    mode = rule.same_dir_mode
    if last.is_loss:
        mode = rule.loss_dir_mode or (SameDirMode.BOTH if mode is SameDirMode.RETURN else mode)
    dist = d_pips <= 0 or distance_ok(mode, side, price, last.close_price, d_pips * pip)
    base_cd = rule.cooldown_loss_s if last.is_loss else rule.cooldown_win_s
    cooldown = max(base_cd * cd_scale, cfg.min_cooldown_s) if base_cd > 0 else 0.0
    elapsed = (now - last.close_at).total_seconds()
    max_age_s = rule.same_dir_max_age.total_seconds()
    if elapsed < cooldown:
        if last.is_loss and dist and rule.loss_cooldown_allow_distance:
            return _ok(
                "cooldown_override_distance",
                f"{elapsed:.0f}s < {cooldown:.0f}s but price {d_pips:.1f} pips away ({mode.value})",
            )
        return _block(
            "cooldown",
            f"{elapsed:.0f}s since a {'loss' if last.is_loss else 'close'} < {cooldown:.0f}s",
        )
    if not dist and elapsed > max_age_s:  # after the cooldown (checked above)
        return stacked or _ok(
            "distance_expired",
            f"last close {elapsed / 3600:.1f} h ago > same_dir_max_age "
            f"{max_age_s / 3600:.1f} h: distance not required",
        )
    if not dist:
        return _block(
            "price_distance",
            f"price {price} not {d_pips:.1f} pips from last close "
            f"{last.close_price} ({mode.value})",
        )
    return stacked or _ok("ok", f"{elapsed:.0f}s since last close; distance ok")
