"""Drop-in for ``execution/reentry_gate.py`` (original-system.md 3.7), backed by autolearn.

One import line changes (``from execution import reentry_gate`` ->
``from autolearn.compat.quantrabbit import reentry_gate``); ``order_manager`` keeps calling
``reentry_gate.allow_entry(strategy_tag=..., units=..., price=..., open_positions=..., now=...)``
before an entry and records ``reentry_block`` with ``{reentry_reason, reentry_details}`` when
the first element is false, and ``needs_open_positions(tag)`` to decide whether to pass them.

Answers come from ``autolearn.gates``' re-entry gate: the per-strategy rules of ``gates.yaml``
(``reentry.strategies``, carried over by hand from ``config/worker_reentry.yaml``; autolearn
never writes either tracked file), the last close of
(base strategy, side) from the ledger (not from ``stage_state.db``). Reason codes are the
original's: ``time_filter``, ``time_block``, ``open_hard_cap``, ``open_stack``,
``open_adverse``, ``open_avg_adverse``, ``stack_override``, ``no_state``, ``cooldown``,
``cooldown_override_distance``, ``price_distance``, ``ok`` (and ``disabled``, ``no_strategy``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from autolearn.compat.quantrabbit.backend import backend, now_utc
from autolearn.core.model import Side
from autolearn.gates.model import OpenPosition
from autolearn.gates.reentry import base_strategy, evaluate_reentry

__all__ = ["allow_entry", "needs_open_positions"]


def _tag_of(trade: Mapping[str, Any]) -> str:
    tag = trade.get("strategy_tag")
    thesis = trade.get("entry_thesis")
    if not tag and isinstance(thesis, Mapping):
        tag = thesis.get("strategy_tag") or thesis.get("strategy") or thesis.get("tag")
    return str(tag or "")


def _stack(open_positions: Mapping[str, Any] | None, base: str, side: Side) -> list[OpenPosition]:
    """The original's ``{pocket: {"open_trades": [...]}}`` as open positions of (base, side)."""
    out: list[OpenPosition] = []
    for pocket, info in (open_positions or {}).items():
        if str(pocket).startswith("__") or not isinstance(info, Mapping):
            continue
        for trade in info.get("open_trades") or []:
            if not isinstance(trade, Mapping) or base_strategy(_tag_of(trade)) != base:
                continue
            try:
                units = int(trade.get("units") or 0)
                price = float(trade.get("price") or 0.0)
            except (TypeError, ValueError):
                continue
            if units == 0 or price <= 0 or (units > 0) != (side is Side.LONG):
                continue
            out.append(
                OpenPosition(
                    strategy=_tag_of(trade),
                    pocket=str(pocket),
                    side=side,
                    units=abs(units),
                    entry_price=price,
                    instrument=str(trade.get("instrument") or ""),
                )
            )
    return out


def allow_entry(
    *,
    strategy_tag: str | None,
    units: int,
    price: float | None,
    open_positions: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> tuple[bool, str, dict[str, object]]:
    """``(allowed, reason, details)`` for an entry of ``units`` (signed) at ``price``."""
    b = backend()
    if not b.enabled("reentry"):
        return True, "disabled", {}
    if not strategy_tag or units == 0 or price is None or price <= 0:
        return True, "no_strategy", {}
    at = now_utc(now)
    b.refresh(at)
    side = Side.LONG if units > 0 else Side.SHORT
    base = base_strategy(strategy_tag)
    result = evaluate_reentry(
        cfg=b.gates.config.reentry,
        rule=b.gates.config.reentry_rule(base),
        side=side,
        price=float(price),
        now=at,
        last=b.gates.aggregates.latest_close(base, side),
        stack=_stack(open_positions, base, side),
    )
    if not result.reasons:
        return result.allowed, "disabled" if result.allowed else "blocked", {}
    first = next((r for r in result.reasons if r.blocking), result.reasons[0])
    return result.allowed, first.code, {"detail": first.detail, "gate": "autolearn.reentry"}


def needs_open_positions(strategy_tag: str | None) -> bool:
    """Whether ``allow_entry`` for this tag looks at open positions (a stack cap is set)."""
    if not strategy_tag:
        return False
    b = backend()
    if not b.enabled("reentry"):
        return False
    rule = b.gates.config.reentry_rule(base_strategy(strategy_tag))
    return bool(
        rule.max_open_trades
        or rule.max_open_trades_hard
        or rule.max_open_adverse_pips
        or rule.max_open_avg_adverse_pips
        or rule.stack_reentry_pips
    )
