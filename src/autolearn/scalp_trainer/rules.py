"""The scalp rules: M1Scalper trades -> evidence with uncertainty -> a target per knob.

The original (original-system.md 3.8) recomputed every knob from scratch with point estimates
(``sl_floor = P85(SL distance) + 0.5``, ``sl_atr_mult = 2.15 if win >= 0.52 else 2.3``...). Here
each rule reads an interval and names a target only when the *whole* interval agrees:

- distance rules (``sl_floor``, ``tp_floor``): a distribution-free order-statistic interval of
  the quantile of realised stop-out / take-profit distances; no target while the current value
  lies inside the interval (plus margin);
- ladder rules (the ATR multipliers, momentum, wick, N-wave leg, tactical ATR floor): the
  original's win-rate thresholds, read on the Beta-posterior interval of the win rate; no target
  while the interval straddles a threshold;
- ``timeout_sec``: mean hold of wins + mean hold of losses (the original's
  ``(hold_win + hold_loss) / 2 * 60 * 2``), with a t-interval; no target while it covers the
  current value.

The caller moves the *current* value toward a target by at most ``max_step`` per apply.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from autolearn.core.distributions import binom_ppf
from autolearn.core.knobs import KnobValue
from autolearn.core.metrics import expectancy_interval, win_rate_interval
from autolearn.core.model import Trade, pip_size
from autolearn.scalp_trainer.config import ScalpTrainerConfig

__all__ = ["LADDERS", "Evidence", "Target", "gather", "quantile_interval", "targets"]

# OANDA's close reasons of the trade's closing fill (the broker vocabulary, not the bot's).
_STOP_OUT = "STOP_LOSS_ORDER"
_TAKE_PROFIT = "TAKE_PROFIT_ORDER"

# knob suffix -> ((win-rate threshold, value) from the highest threshold down, value below all)
LADDERS: Mapping[str, tuple[tuple[tuple[float, float], ...], float]] = {
    "fallback.sl_atr_mult": (((0.52, 2.15),), 2.3),
    "fallback.tp_atr_mult": (((0.55, 0.88),), 0.95),
    "fallback.momentum_thresh": (((0.6, 0.00118), (0.5, 0.00125)), 0.0013),
    "fallback.wick_min": (((0.55, 0.0008),), 0.00088),
    "nwave.min_leg_pips": (((0.55, 2.1),), 1.9),
    "fallback.atr_floor_tactical": (((0.5, 0.98),), 1.08),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Interval:
    """A point estimate with its interval (NaN when there is no evidence)."""

    low: float
    estimate: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int | None]:
        def num(x: float) -> float | None:
            return round(x, 6) if math.isfinite(x) else None

        return {"low": num(self.low), "estimate": num(self.estimate), "high": num(self.high)} | {
            "n": self.n
        }


_NONE = Interval(low=math.nan, estimate=math.nan, high=math.nan, n=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """What the rules read from the strategy's trades."""

    n: int
    decisive: int  # trades past +-scratch_pips
    wins: int
    win_rate: Interval
    sl_distance: Interval  # quantile of stop-out distances (pips)
    tp_distance: Interval  # quantile of take-profit distances (pips)
    hold_sum_s: Interval  # mean hold of wins + mean hold of losses (seconds)

    def as_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "decisive": self.decisive,
            "wins": self.wins,
            "win_rate": self.win_rate.as_dict(),
            "sl_distance": self.sl_distance.as_dict(),
            "tp_distance": self.tp_distance.as_dict(),
            "hold_sum_s": self.hold_sum_s.as_dict(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Where one knob should go (``value`` None: no signal), because ``code`` (detail)."""

    knob: str
    value: float | None
    code: str
    detail: str


def quantile_interval(values: Sequence[float], q: float, confidence: float) -> Interval:
    """Distribution-free interval of the ``q`` quantile from order statistics (binomial ranks).

    The true quantile lies between the order statistics of ranks ``Binom(n, q)``'s
    ``(1 - c)/2`` and ``(1 + c)/2`` quantiles with probability >= ``c`` (for continuous data).
    """
    n = len(values)
    if n == 0:
        return _NONE
    xs = np.sort(np.asarray(values, dtype=np.float64))
    tail = (1 - confidence) / 2
    lo_rank = binom_ppf(tail, n, q)  # rank r means "the r-th smallest", 1-based
    hi_rank = binom_ppf(1 - tail, n, q) + 1
    low = float(xs[max(lo_rank, 1) - 1])
    high = float(xs[min(hi_rank, n) - 1])
    return Interval(low=low, estimate=float(np.quantile(xs, q)), high=high, n=n)


def _distance_pips(trade: Trade) -> float:
    return abs(trade.close_price - trade.entry_price) / pip_size(trade.instrument)


def _hold_sum(wins: Sequence[float], losses: Sequence[float], confidence: float) -> Interval:
    if len(wins) < 2 or len(losses) < 2:
        return _NONE
    estimate = float(np.mean(wins) + np.mean(losses))
    lw, hw = expectancy_interval(wins, confidence)
    ll, hl = expectancy_interval(losses, confidence)
    # independent samples: the half-widths add in quadrature
    half = math.hypot((hw - lw) / 2, (hl - ll) / 2)
    return Interval(
        low=estimate - half, estimate=estimate, high=estimate + half, n=len(wins) + len(losses)
    )


def gather(trades: Sequence[Trade], config: ScalpTrainerConfig) -> Evidence:
    """The evidence of ``trades`` (already filtered to the strategy and the window)."""
    wins = [t for t in trades if t.pl_pips > config.scratch_pips]
    losses = [t for t in trades if t.pl_pips < -config.scratch_pips]
    decisive = len(wins) + len(losses)
    lo, hi = win_rate_interval(len(wins), decisive, config.confidence)
    win_rate = Interval(
        low=lo,
        estimate=len(wins) / decisive if decisive else math.nan,
        high=hi,
        n=decisive,
    )
    stops = [_distance_pips(t) for t in trades if t.broker_close_reason == _STOP_OUT]
    takes = [_distance_pips(t) for t in trades if t.broker_close_reason == _TAKE_PROFIT]
    return Evidence(
        n=len(trades),
        decisive=decisive,
        wins=len(wins),
        win_rate=win_rate,
        sl_distance=quantile_interval(stops, config.sl_quantile, config.confidence),
        tp_distance=quantile_interval(takes, config.tp_quantile, config.confidence),
        hold_sum_s=_hold_sum(
            [t.hold_s for t in wins], [t.hold_s for t in losses], config.confidence
        ),
    )


def _rung(x: float, ladder: tuple[tuple[tuple[float, float], ...], float]) -> float:
    rungs, below = ladder
    for threshold, value in rungs:
        if x >= threshold:
            return value
    return below


def _interval_target(
    knob: str, interval: Interval, current: float, what: str, margin: float = 0.0
) -> Target:
    if not math.isfinite(interval.estimate):
        return Target(knob=knob, value=None, code="no_evidence", detail=f"no {what}")
    low, high = interval.low + margin, interval.high + margin
    detail = (
        f"{what} {interval.estimate + margin:.4g} in [{low:.4g}, {high:.4g}] "
        f"(n={interval.n}); current {current:g}"
    )
    if low <= current <= high:
        return Target(knob=knob, value=None, code="within_uncertainty", detail=detail)
    return Target(knob=knob, value=interval.estimate + margin, code=f"{what}_rule", detail=detail)


def targets(
    evidence: Evidence,
    knobs: Sequence[str],
    current: Mapping[str, KnobValue],
    config: ScalpTrainerConfig,
) -> list[Target]:
    """One :class:`Target` per knob name in ``knobs`` (``value`` None when no rule fires)."""
    prefix = config.strategy + "."
    out: list[Target] = []
    wr = evidence.win_rate
    for knob in knobs:
        suffix = knob.removeprefix(prefix)
        now = float(current[knob])
        if suffix == "fallback.sl_floor":
            out.append(
                _interval_target(
                    knob,
                    evidence.sl_distance
                    if evidence.sl_distance.n >= config.min_exit_samples
                    else _NONE,
                    now,
                    f"P{round(config.sl_quantile * 100)}_stop_out_distance",
                    config.sl_margin_pips,
                )
            )
        elif suffix == "fallback.tp_floor":
            out.append(
                _interval_target(
                    knob,
                    evidence.tp_distance
                    if evidence.tp_distance.n >= config.min_exit_samples
                    else _NONE,
                    now,
                    f"P{round(config.tp_quantile * 100)}_take_profit_distance",
                )
            )
        elif suffix == "timeout_sec":
            out.append(_interval_target(knob, evidence.hold_sum_s, now, "hold_win_plus_loss_s"))
        elif suffix in LADDERS:
            out.append(_ladder_target(knob, LADDERS[suffix], wr, now))
        else:
            out.append(Target(knob=knob, value=None, code="no_rule", detail="no rule reads it"))
    return out


def _ladder_target(
    knob: str,
    ladder: tuple[tuple[tuple[float, float], ...], float],
    win_rate: Interval,
    current: float,
) -> Target:
    if not math.isfinite(win_rate.low):
        return Target(knob=knob, value=None, code="no_evidence", detail="no decisive trades")
    at_low, at_high = _rung(win_rate.low, ladder), _rung(win_rate.high, ladder)
    detail = (
        f"win rate {win_rate.estimate:.3f} in [{win_rate.low:.3f}, {win_rate.high:.3f}] "
        f"(n={win_rate.n}) -> {at_low:g}..{at_high:g}; current {current:g}"
    )
    if at_low != at_high:
        return Target(knob=knob, value=None, code="straddles_threshold", detail=detail)
    return Target(knob=knob, value=at_low, code="win_rate_ladder", detail=detail)
