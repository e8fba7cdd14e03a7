"""Stage tracker: loss-streak and loss-cluster cooldowns, and a size multiplier by streak.

State advances one closed trade at a time, in close order (a pocket that receives an older
trade is reset and folded again by the aggregates), and every cooldown ends at the
*close time* of the trade that caused it plus a duration (Freqtrade's lock end), never at
"now" plus a duration: the original stamped its loss window with "now", so a restart turned
old losses into fresh pocket-wide cooldowns (original-system.md 5.7). Because the state is a
function of the trades alone, it is rebuilt from the ledger at start-up; nothing is persisted
and no row id is involved.

- per (pocket, side): the lose streak (decaying by one per ``streak_decay`` without a trade)
  reaching ``loss_streak`` sets a cooldown on that side and a shorter flip guard on the
  opposite side;
- per (pocket, strategy): ``strategy_loss_streak`` losses in a row set a strategy cooldown;
- per pocket: ``cluster_min_losses`` losses within ``cluster_window`` set a cooldown scaled by
  severity (count and summed loss), ending at the last loss's close time plus that duration;
- size multiplier: ``size_by_lose_streak[streak]`` (floored). The original also shrank after
  win streaks; that made a worse outcome loosen the gate, so it is gone.

Pure: no I/O, no clock. ``StageBook`` is the mutable container the aggregates own; every
decision is one of the pure functions below.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from autolearn.core.metrics import Units
from autolearn.core.model import Side, Trade
from autolearn.core.timestamps import from_epoch_us, to_epoch_us
from autolearn.gates.config import StageConfig
from autolearn.gates.model import Gate, GateResult, Reason

__all__ = [
    "Outcome",
    "SideStreak",
    "StageBook",
    "StrategyStreak",
    "advance_side",
    "advance_strategy",
    "classify",
    "cluster_cooldown_until_us",
    "decayed",
    "evaluate_stage",
]

_US = 1_000_000


class Outcome(StrEnum):
    WIN = "win"
    LOSS = "loss"
    FLAT = "flat"


def classify(value: float, flat_band: float) -> Outcome:
    if value < -flat_band:
        return Outcome.LOSS
    if value > flat_band:
        return Outcome.WIN
    return Outcome.FLAT


def decayed(streak: int, at_us: int | None, now_us: int, decay_us: int) -> int:
    """The streak left at ``now``: one less per full ``decay`` since the last trade."""
    if at_us is None or streak <= 0 or decay_us <= 0:
        return max(streak, 0)
    return max(0, streak - max(0, now_us - at_us) // decay_us)


@dataclass(frozen=True, slots=True, kw_only=True)
class SideStreak:
    lose: int = 0
    at_us: int | None = None
    cooldown_until_us: int = 0
    cooldown_streak: int = 0
    flip_until_us: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyStreak:
    lose: int = 0
    cooldown_until_us: int = 0


def _cooldown_us(cfg: StageConfig, pocket: str) -> int:
    return int(cfg.cooldown_s.get(pocket, cfg.default_cooldown_s) * _US)


def advance_side(
    s: SideStreak, outcome: Outcome, close_us: int, pocket: str, cfg: StageConfig
) -> tuple[SideStreak, int]:
    """The side's state after one trade, and the flip-guard end it puts on the other side."""
    lose = decayed(s.lose, s.at_us, close_us, int(cfg.streak_decay.total_seconds() * _US))
    lose = lose + 1 if outcome is Outcome.LOSS else 0
    until, streak, flip = s.cooldown_until_us, s.cooldown_streak, 0
    if lose >= cfg.loss_streak:
        cd = _cooldown_us(cfg, pocket)
        if close_us + cd >= until:
            until, streak = close_us + cd, lose
        flip = close_us + int(max(cfg.flip_min_s * _US, cfg.flip_fraction * cd))
    return SideStreak(
        lose=lose,
        at_us=close_us,
        cooldown_until_us=until,
        cooldown_streak=streak,
        flip_until_us=s.flip_until_us,
    ), flip


def advance_strategy(
    s: StrategyStreak, outcome: Outcome, close_us: int, pocket: str, cfg: StageConfig
) -> StrategyStreak:
    lose = s.lose + 1 if outcome is Outcome.LOSS else 0
    until = s.cooldown_until_us
    if lose >= cfg.strategy_loss_streak:
        # No reset after a cooldown: a reset would let a worse history end a cooldown sooner.
        until = max(until, close_us + _cooldown_us(cfg, pocket))
    return StrategyStreak(lose=lose, cooldown_until_us=until)


def cluster_cooldown_until_us(
    loss_times_us: Sequence[int], loss_sizes: Sequence[float], pocket: str, cfg: StageConfig
) -> tuple[int, int, float]:
    """(until, count, severity) of the losses given (already cut to the window); until 0: none."""
    count = len(loss_times_us)
    if count < cfg.cluster_min_losses:
        return 0, count, 0.0
    total = sum(loss_sizes)
    severity = cfg.cluster_count_weight * min(count - cfg.cluster_min_losses + 1, 2)
    level_weight = 0.0
    for level, weight in zip(cfg.cluster_loss_levels, cfg.cluster_loss_weights, strict=True):
        if total >= level:
            level_weight = max(level_weight, weight)
    severity += level_weight
    base = cfg.cluster_base_s.get(pocket, cfg.cluster_default_base_s)
    seconds = min(max(base * (1 + severity), base), cfg.cluster_max_factor * base)
    return max(loss_times_us) + int(seconds * _US), count, severity


@dataclass(slots=True)
class _Losses:
    times: list[int] = field(default_factory=list)
    sizes: list[float] = field(default_factory=list)


class StageBook:
    """The stage tracker's incremental state (fed in ledger order by the aggregates)."""

    def __init__(self, cfg: StageConfig, units: Units) -> None:
        self.cfg = cfg
        self.units = units
        self.sides: dict[tuple[str, Side], SideStreak] = {}
        self.strategies: dict[tuple[str, str], StrategyStreak] = {}
        self.losses: dict[str, _Losses] = {}

    def advance(self, trade: Trade) -> None:
        value = trade.pl_pips if self.units is Units.PIPS else trade.pl_account
        outcome = classify(value, self.cfg.flat_band)
        close_us = to_epoch_us(trade.close_at)
        key = (trade.pocket, trade.side)
        side, flip = advance_side(
            self.sides.get(key, SideStreak()), outcome, close_us, trade.pocket, self.cfg
        )
        self.sides[key] = side
        if flip:
            okey = (trade.pocket, trade.side.opposite)
            other = self.sides.get(okey, SideStreak())
            self.sides[okey] = SideStreak(
                lose=other.lose,
                at_us=other.at_us,
                cooldown_until_us=other.cooldown_until_us,
                cooldown_streak=other.cooldown_streak,
                flip_until_us=max(other.flip_until_us, flip),
            )
        skey = (trade.pocket, trade.strategy)
        self.strategies[skey] = advance_strategy(
            self.strategies.get(skey, StrategyStreak()), outcome, close_us, trade.pocket, self.cfg
        )
        if outcome is Outcome.LOSS:
            book = self.losses.setdefault(trade.pocket, _Losses())
            book.times.append(close_us)
            book.sizes.append(-value)
            horizon = close_us - int(self.cfg.cluster_window.total_seconds() * _US)
            cut = bisect.bisect_left(book.times, horizon)
            if cut > 256:  # amortised trimming keeps the lists short
                del book.times[:cut], book.sizes[:cut]

    def reset_pocket(self, pocket: str) -> None:
        """Forget ``pocket``'s state, to fold its trades again (one arrived out of order)."""
        for side_key in [k for k in self.sides if k[0] == pocket]:
            del self.sides[side_key]
        for strategy_key in [k for k in self.strategies if k[0] == pocket]:
            del self.strategies[strategy_key]
        self.losses.pop(pocket, None)

    def cluster_window(self, pocket: str, now_us: int) -> tuple[list[int], list[float]]:
        book = self.losses.get(pocket)
        if book is None:
            return [], []
        lo = bisect.bisect_right(
            book.times, now_us - int(self.cfg.cluster_window.total_seconds() * _US)
        )
        hi = bisect.bisect_right(book.times, now_us)
        return book.times[lo:hi], book.sizes[lo:hi]


def evaluate_stage(
    *,
    cfg: StageConfig,
    pocket: str,
    side: Side,
    side_state: SideStreak | None,
    strategy_state: StrategyStreak | None,
    cluster: tuple[int, int, float],
    now: datetime,
) -> GateResult:
    """The stage tracker's verdict for an entry on (pocket, side, strategy) at ``now``."""
    if not cfg.enabled:
        return GateResult(allowed=True)
    now_us = to_epoch_us(now)
    reasons: list[Reason] = []
    s = side_state or SideStreak()
    if now_us < s.cooldown_until_us:
        reasons.append(
            Reason(
                gate=Gate.STAGE,
                code="loss_streak_cooldown",
                blocking=True,
                detail=f"{pocket} {side.value}: {s.cooldown_streak} losses in a row; "
                f"until {from_epoch_us(s.cooldown_until_us).isoformat()}",
            )
        )
    if now_us < s.flip_until_us:
        reasons.append(
            Reason(
                gate=Gate.STAGE,
                code="flip_guard",
                blocking=True,
                detail=f"{pocket} {side.opposite.value} lost {cfg.loss_streak} in a row; "
                f"until {from_epoch_us(s.flip_until_us).isoformat()}",
            )
        )
    st = strategy_state or StrategyStreak()
    if now_us < st.cooldown_until_us:
        reasons.append(
            Reason(
                gate=Gate.STAGE,
                code="strategy_cooldown",
                blocking=True,
                detail=f"strategy lose streak {st.lose}; until "
                f"{from_epoch_us(st.cooldown_until_us).isoformat()}",
            )
        )
    until, count, severity = cluster
    if now_us < until:
        reasons.append(
            Reason(
                gate=Gate.STAGE,
                code="loss_cluster",
                blocking=True,
                detail=f"{pocket}: {count} losses in {cfg.cluster_window}, severity "
                f"{severity:.2f}; until {from_epoch_us(until).isoformat()}",
            )
        )
    streak = decayed(s.lose, s.at_us, now_us, int(cfg.streak_decay.total_seconds() * _US))
    table = cfg.size_by_lose_streak
    mult = max(table[min(streak, len(table) - 1)], cfg.size_floor)
    if streak:
        reasons.append(
            Reason(
                gate=Gate.STAGE,
                code="lose_streak_size",
                detail=f"{pocket} {side.value} lose streak {streak}: size x{mult:.2f}",
            )
        )
    if any(r.blocking for r in reasons):
        return GateResult(allowed=False, size_multiplier=0.0, reasons=tuple(reasons))
    return GateResult(allowed=True, size_multiplier=mult, reasons=tuple(reasons))
