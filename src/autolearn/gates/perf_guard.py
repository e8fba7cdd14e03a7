"""Perf guard: block or shrink a strategy's entries on its recent PF / win rate / expectancy.

Rules, in order (original-system.md 3.5, with its later hard/soft split):
1. margin closeout in the window -> ``margin_closeout`` (hard by default);
2. fail-fast: ``n >= failfast.min_trades`` and (PF < pf or win < win) -> ``failfast``; hard
   when PF < hard_pf, or when both fail and ``hard_require_both``; else soft;
3. stop-loss rate: PF < 1 and the share of losing stop-loss closes >= ``sl_loss_rate_max``;
4. warm-up: ``n < min_trades`` -> allowed (``warmup``), size 1;
5. base: PF < pf_min, or PF < 1 and win < win_min, or expectancy < expectancy_min
   -> ``perf_low`` (soft); the same on the UTC-hour slice when ``hourly``;
6. size: +-``step`` per criterion met/missed (PF, win, expectancy; -1 more when PF < 1 and
   expectancy < 0), clamped to [floor, cap]: two-sided, unlike the original's boost-only scale.
Soft reasons deny in BLOCK mode, shrink to ``reduce_mult`` in REDUCE, are only reported in
WARN; hard reasons deny in every mode. NaN (no evidence) never fails a rule. Every rule is
monotone: a worse trade never loosens the verdict, a stricter threshold never loosens it.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from autolearn.core.metrics import Stats
from autolearn.gates.config import PerfGuardRules, PerfMode
from autolearn.gates.model import Gate, GateResult, Reason

__all__ = ["WindowStats", "evaluate_perf"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowStats:
    """A strategy's trades in the lookback window: metrics plus close-reason counts."""

    stats: Stats
    margin_closeouts: int = 0
    sl_losses: int = 0  # losing trades closed by the broker's stop-loss order


def _lt(value: float, threshold: float) -> bool:
    """``value < threshold`` with NaN (no evidence) never counting as failing."""
    return not math.isnan(value) and value < threshold


def _base_fails(s: Stats, rules: PerfGuardRules) -> list[str]:
    found = []
    if _lt(s.profit_factor, rules.pf_min):
        found.append(f"pf {s.profit_factor:.3f} < {rules.pf_min}")
    elif _lt(s.profit_factor, 1.0) and _lt(s.win_rate, rules.win_min):
        found.append(f"pf {s.profit_factor:.3f} < 1 and win {s.win_rate:.3f} < {rules.win_min}")
    if rules.expectancy_min is not None and _lt(s.expectancy, rules.expectancy_min):
        found.append(f"expectancy {s.expectancy:.3f} < {rules.expectancy_min}")
    return found


def _scale(s: Stats, rules: PerfGuardRules) -> float:
    sc = rules.scale
    if not sc.enabled or s.n < sc.min_trades:
        return 1.0
    score = 0
    for value, good in (
        (s.profit_factor, sc.pf_good),
        (s.win_rate, sc.win_good),
        (s.expectancy, sc.expectancy_good),
    ):
        if not math.isnan(value):
            score += 1 if value >= good else -1
    if _lt(s.profit_factor, 1.0) and _lt(s.expectancy, 0.0):
        score -= 1
    return min(max(1.0 + sc.step * score, sc.floor), sc.cap)


def _hard_checks(w: WindowStats, rules: PerfGuardRules) -> list[Reason]:
    s = w.stats
    out: list[Reason] = []
    if w.margin_closeouts:
        out.append(
            Reason(
                gate=Gate.PERF_GUARD,
                code="margin_closeout",
                blocking=True,
                hard=rules.margin_closeout_hard,
                detail=f"{w.margin_closeouts} margin closeout(s) in {rules.lookback}",
            )
        )
    ff = rules.failfast
    if s.n >= ff.min_trades:
        pf_bad, win_bad = _lt(s.profit_factor, ff.pf), _lt(s.win_rate, ff.win)
        if pf_bad or win_bad:
            hard = _lt(s.profit_factor, ff.hard_pf) or (ff.hard_require_both and pf_bad and win_bad)
            out.append(
                Reason(
                    gate=Gate.PERF_GUARD,
                    code="failfast",
                    blocking=True,
                    hard=hard,
                    detail=f"n={s.n} pf {s.profit_factor:.3f} (< {ff.pf}?) win "
                    f"{s.win_rate:.3f} (< {ff.win}?)",
                )
            )
    if rules.sl_loss_rate_max > 0 and s.n >= rules.sl_loss_min_trades and _lt(s.profit_factor, 1.0):
        rate = w.sl_losses / s.n
        if rate >= rules.sl_loss_rate_max:
            out.append(
                Reason(
                    gate=Gate.PERF_GUARD,
                    code="sl_loss_rate",
                    blocking=True,
                    detail=f"stop-loss losses {rate:.2f} >= {rules.sl_loss_rate_max}",
                )
            )
    return out


def evaluate_perf(
    rules: PerfGuardRules, window: WindowStats, hour: WindowStats | None = None
) -> GateResult:
    """The perf guard's verdict on one (pocket, strategy) from its window (and hour slice)."""
    if not rules.enabled:
        return GateResult(allowed=True)
    s = window.stats
    reasons = _hard_checks(window, rules)
    if s.n < rules.min_trades:
        reasons.append(
            Reason(
                gate=Gate.PERF_GUARD,
                code="warmup",
                detail=f"n={s.n} < min_trades {rules.min_trades}",
            )
        )
        mult = 1.0
    else:
        for text in _base_fails(s, rules):
            reasons.append(
                Reason(
                    gate=Gate.PERF_GUARD, code="perf_low", blocking=True, detail=f"n={s.n} {text}"
                )
            )
        mult = _scale(s, rules)
    if rules.hourly and hour is not None and hour.stats.n >= rules.hourly_min_trades:
        for text in _base_fails(hour.stats, rules):
            reasons.append(
                Reason(
                    gate=Gate.PERF_GUARD,
                    code="perf_low_hour",
                    blocking=True,
                    detail=f"hour slice n={hour.stats.n} {text}",
                )
            )
    return _apply_mode(rules, reasons, mult)


def _apply_mode(rules: PerfGuardRules, reasons: list[Reason], mult: float) -> GateResult:
    hard = [r for r in reasons if r.blocking and r.hard]
    soft = [r for r in reasons if r.blocking and not r.hard]
    if hard or (soft and rules.mode is PerfMode.BLOCK):
        return GateResult(allowed=False, size_multiplier=0.0, reasons=tuple(reasons))
    if soft:
        # Not denied: the soft reasons are kept as information, no longer blocking.
        shown = [
            Reason(gate=r.gate, code=r.code, detail=f"{rules.mode.value}: {r.detail}")
            if r.blocking
            else r
            for r in reasons
        ]
        if rules.mode is PerfMode.REDUCE:
            mult = min(mult, rules.reduce_mult)
        return GateResult(allowed=True, size_multiplier=mult, reasons=tuple(shown))
    return GateResult(allowed=True, size_multiplier=mult, reasons=tuple(reasons))
