"""Drop-in for ``execution/stage_tracker.py``'s ``StageTracker`` (original-system.md 3.6).

One import line changes (``from execution.stage_tracker import StageTracker`` ->
``from autolearn.compat.quantrabbit.stage_tracker import StageTracker``); the call sites keep
their shape: the main loop and scalp workers call ``update_loss_streaks(...)`` every
``STAGE_REFRESH_SEC``, the order path asks ``is_blocked(pocket, direction, now)`` (a
``(blocked, remaining_seconds, reason)`` triple) and sizes with ``size_multiplier(pocket,
direction)``.

Backed by ``autolearn.gates``' stage tracker: streaks and cooldowns are a pure function of the
ledger's trades, every cooldown ends at the causing trade's *close time* plus a duration (the
original stamped losses with "now", 5.7), nothing is stored in ``logs/stage_state.db``, and no
row id is involved. ``update_loss_streaks`` therefore only reads new trades; its market-context
arguments are accepted and ignored (cluster severity uses the trades alone). ``direction`` is
``long``/``short`` (``buy``/``sell`` accepted).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from autolearn.compat.quantrabbit.backend import backend, now_utc
from autolearn.core.model import Side
from autolearn.core.timestamps import to_epoch_us
from autolearn.gates.stage import SideStreak, StrategyStreak, evaluate_stage

__all__ = ["StageTracker"]

_SIDES = {"long": Side.LONG, "buy": Side.LONG, "short": Side.SHORT, "sell": Side.SHORT}


def _side(direction: str) -> Side:
    try:
        return _SIDES[str(direction).strip().lower()]
    except KeyError:
        raise ValueError(f"direction must be long/short (or buy/sell), got {direction!r}") from None


class StageTracker:
    """The original's tracker API over autolearn's stage gate (one per worker is fine)."""

    def __init__(self, db_path: Path | None = None) -> None:
        del db_path  # the state is rebuilt from the ledger: no logs/stage_state.db

    def close(self) -> None:
        """Nothing to close (the shared backend lives as long as the process)."""

    def update_loss_streaks(self, *, now: datetime | None = None, **_context: Any) -> None:
        """Read the trades closed since the last call (streaks advance in ledger order)."""
        backend().refresh(now_utc(now))

    def is_blocked(
        self, pocket: str, direction: str, now: datetime | None = None
    ) -> tuple[bool, int | None, str | None]:
        """``(True, seconds_left, reason)`` while (pocket, direction) cools down, else
        ``(False, None, None)``; reasons ``loss_streak_cooldown``, ``flip_guard``,
        ``loss_cluster``."""
        b = backend()
        if not b.enabled("stage"):
            return False, None, None
        at = now_utc(now)
        b.refresh(at)
        side = _side(direction)
        book = b.gates.aggregates.stage
        state = book.sides.get((pocket, side)) or SideStreak()
        cluster = b.gates.aggregates.cluster(pocket, at)
        result = evaluate_stage(
            cfg=b.gates.config.stage,
            pocket=pocket,
            side=side,
            side_state=state,
            strategy_state=None,
            cluster=cluster,
            now=at,
        )
        blocking = [r for r in result.reasons if r.blocking]
        if not blocking:
            return False, None, None
        ends = {
            "loss_streak_cooldown": state.cooldown_until_us,
            "flip_guard": state.flip_until_us,
            "loss_cluster": cluster[0],
        }
        until_us = max(ends.get(r.code, 0) for r in blocking)
        remaining = max(1, int((until_us - to_epoch_us(at)) / 1_000_000))
        return True, remaining, blocking[0].code

    def is_strategy_blocked(
        self, strategy: str, pocket: str, now: datetime | None = None
    ) -> tuple[bool, int | None, str | None]:
        """The per-strategy lose-streak cooldown of ``strategy`` in ``pocket``."""
        b = backend()
        if not b.enabled("stage"):
            return False, None, None
        at = now_utc(now)
        b.refresh(at)
        state = b.gates.aggregates.stage.strategies.get((pocket, strategy)) or StrategyStreak()
        left_us = state.cooldown_until_us - to_epoch_us(at)
        if left_us <= 0:
            return False, None, None
        return True, max(1, int(left_us / 1_000_000)), "strategy_cooldown"

    def size_multiplier(self, pocket: str, direction: str, now: datetime | None = None) -> float:
        """The lose-streak size factor of (pocket, direction) (1.0 without a streak)."""
        b = backend()
        if not b.enabled("stage"):
            return 1.0
        at = now_utc(now)
        b.refresh(at)
        return self._streak_factor(pocket, _side(direction), at)

    def _streak_factor(self, pocket: str, side: Side, at: datetime) -> float:
        """The streak's size factor alone (a cooldown's 0 is ``is_blocked``'s answer)."""
        b = backend()
        state = b.gates.aggregates.stage.sides.get((pocket, side)) or SideStreak()
        free = SideStreak(lose=state.lose, at_us=state.at_us)  # same streak, no cooldown
        result = evaluate_stage(
            cfg=b.gates.config.stage,
            pocket=pocket,
            side=side,
            side_state=free,
            strategy_state=None,
            cluster=(0, 0, 0.0),
            now=at,
        )
        return result.size_multiplier

    def get_loss_profile(self, pocket: str, direction: str) -> tuple[int, int]:
        """``(lose_streak, win_streak)``; autolearn keeps no win streak (it never loosened)."""
        state = backend().gates.aggregates.stage.sides.get((pocket, _side(direction)))
        return (state.lose if state else 0), 0
