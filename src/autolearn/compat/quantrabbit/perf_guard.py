"""Drop-in for ``workers/common/perf_guard.py`` (original-system.md 3.5), backed by autolearn.

A worker changes one import line::

    from workers.common import perf_guard                      # before
    from autolearn.compat.quantrabbit import perf_guard        # after

and its call sites stay as they are: ``order_manager`` preflight calls
``perf_guard.is_pocket_allowed(pocket)`` then ``perf_guard.is_allowed(strategy_tag, pocket,
hour=<UTC hour>)`` and records ``perf_block_pocket`` / ``perf_block`` when ``.allowed`` is false;
``workers/common/dyn_size.py`` multiplies units by
``perf_guard.perf_scale(tag, pocket).multiplier``.

Answers come from ``autolearn.gates`` over autolearn's ledger (kept current by ``autolearn ingest
--follow logs/trades.db``), not from SQL on ``trades.db`` per call: the same PF/win rules (from
``gates.yaml``, not the ``PERF_GUARD_*`` env), with the policy's pocket block as the pocket
guard. ``reason`` strings start with the gate's code (``warmup``, ``perf_low``, ``failfast``,
``margin_closeout``, ``policy_pocket_blocked``...) and ``hard:`` for a block no mode softens.
``env_prefix`` is accepted and ignored (per-worker settings live in ``gates.yaml``).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import NamedTuple

from autolearn.compat.quantrabbit.backend import backend, now_utc
from autolearn.gates.config import LedgerErrorMode
from autolearn.gates.model import GateResult
from autolearn.gates.perf_guard import evaluate_perf

__all__ = ["PerfDecision", "PerfScaleDecision", "is_allowed", "is_pocket_allowed", "perf_scale"]


class PerfDecision(NamedTuple):
    """The original's return value: may the entry go, why, on how many trades."""

    allowed: bool
    reason: str
    sample: int


class PerfScaleDecision(NamedTuple):
    """The original's size multiplier value (``dyn_size`` reads ``multiplier``)."""

    multiplier: float
    reason: str
    sample: int
    pf: float
    win_rate: float
    avg_pips: float


def _reason(result: GateResult, default: str) -> str:
    blocking = [r for r in result.reasons if r.blocking]
    shown = blocking or list(result.reasons)
    if not shown:
        return default
    first = shown[0]
    text = f"{first.code}:{first.detail}" if first.detail else first.code
    return f"hard:{text}" if first.hard and not result.allowed else text


def _ledger_decision() -> PerfDecision | None:
    b = backend()
    if b.gates.ledger_error is None:
        return None
    blocking = b.gates.config.on_ledger_error is LedgerErrorMode.BLOCK
    return PerfDecision(not blocking, f"ledger_unreadable:{b.gates.ledger_error}", 0)


def is_allowed(
    tag: str,
    pocket: str,
    *,
    hour: int | None = None,
    side: str | None = None,
    env_prefix: str | None = None,
    now: datetime | None = None,
) -> PerfDecision:
    """The perf guard on (pocket, strategy ``tag``); ``hour`` (UTC) adds the hourly slice."""
    del side, env_prefix  # the setup slice and env prefixes are configured in gates.yaml
    b = backend()
    if not b.enabled("perf_guard"):
        return PerfDecision(True, "disabled", 0)
    at = now_utc(now)
    b.refresh(at)
    failed = _ledger_decision()
    if failed is not None:
        return failed
    rules = b.gates.config.perf_rules(pocket, tag)
    window = b.gates.aggregates.window(pocket, tag, rules.lookback, at)
    hourly = None
    if rules.hourly and hour is not None:
        hourly = b.gates.aggregates.window(pocket, tag, rules.lookback, at, hour)
    result = evaluate_perf(rules, window, hourly)
    return PerfDecision(result.allowed, _reason(result, "ok"), window.stats.n)


def is_pocket_allowed(
    pocket: str, *, env_prefix: str | None = None, now: datetime | None = None
) -> PerfDecision:
    """The pocket-level guard: autolearn's policy block (``pockets.<p>.allow_new``)."""
    del env_prefix, now
    b = backend()
    if not pocket or pocket == "manual":
        return PerfDecision(True, "skip", 0)
    if not b.knobs(f"pockets.{pocket}.allow_new", True):
        return PerfDecision(
            False, f"hard:policy_pocket_blocked:pockets.{pocket}.allow_new is false", 0
        )
    return PerfDecision(True, "ok", 0)


def perf_scale(
    tag: str, pocket: str, *, env_prefix: str | None = None, now: datetime | None = None
) -> PerfScaleDecision:
    """The perf guard's size multiplier for (pocket, ``tag``) (1.0 while warming up)."""
    del env_prefix
    b = backend()
    if not b.enabled("perf_guard"):
        return PerfScaleDecision(1.0, "disabled", 0, 1.0, 0.0, 0.0)
    at = now_utc(now)
    b.refresh(at)
    rules = b.gates.config.perf_rules(pocket, tag)
    window = b.gates.aggregates.window(pocket, tag, rules.lookback, at)
    result = evaluate_perf(rules, window, None)
    s = window.stats
    mult = result.size_multiplier if result.allowed else 1.0
    if s.n < rules.min_trades:
        reason = "insufficient"
    else:
        reason = "boost" if mult > 1.0 else ("shrink" if mult < 1.0 else "flat")
    return PerfScaleDecision(
        mult, reason, s.n, _finite(s.profit_factor), _finite(s.win_rate), _finite(s.expectancy)
    )


def _finite(value: float) -> float:
    """NaN (no trades) as 0.0, as the original's empty windows; inf (no losses) is kept."""
    return 0.0 if math.isnan(value) else value
