"""The shared judge: is a candidate config version harmful, better, or undecided vs the LKG?

Every mechanism that changes knobs (tuner, scalp trainer, autotune) judges its change here, on
the trades *opened under* the candidate against the trades opened under the last-known-good
(LKG) version. The judge knows nothing about knobs or mechanisms: the caller says which versions
form which arm (:func:`split_by_arm`) and passes per-trade P/L.

Why an always-valid confidence sequence (mixture SPRT; Johari, Pekelis & Walsh, "Always Valid
Inference", 2015/2019): the mechanisms look at the evidence at every run and stop as soon as they
can decide. A fixed-n test peeked at every run inflates its false-alarm rate without bound; the
normal-mixture SPRT stays valid under continuous monitoring (Ville's inequality) and has a closed
form. It is used in its Gaussian (CLT) form on ``theta = mean(candidate) - mean(baseline)`` with
the plug-in variance ``V = s_c^2/n_c + s_b^2/n_b``; the set of ``theta0`` with
``Lambda(theta0) < 1/alpha`` is the ``1 - alpha`` confidence sequence ``estimate +- half_width``.

Calibrated for FX variance (per-trade sd ~5 pips at tens of trades a day): every scale is in units
of the **pooled sd estimated from the data**, never absolute pips, so the same settings hold for a
scalper at sd 2 and a swing strategy at sd 30. The mixture scale is the effect size (in sd) the
test is most sensitive to. The two decisions are separate and both need evidence:

- FAIL (harm)     the whole sequence lies below ``-harm_margin_sd * sd``: roll back;
- PASS (better)   the whole sequence lies above ``promote_margin_sd * sd``: promote. Never on
  "not worse than a band": a chain of "not worse" promotions can ratchet the EV down by up to the
  band each time;
- INCONCLUSIVE    otherwise, or below the minimum sample sizes, with the candidate trades still
  needed if the current estimate and spreads persisted.

Both decisions read one two-sided sequence, so P(any wrong decision) <= ``alpha``; under no true
effect each side errs with about ``alpha / 2``.

A change proposed on counterfactual evidence (issue 12) is judged by :func:`judge_forecast`
instead: against its pre-registered per-trade forecast, not against "no worse per trade" (see
there for why).

Hard limits (:func:`check_hard_limits`) bypass the statistics, as Kayenta's "critical" metrics do,
and are calibrated to trip on a no-effect change in well under 1 % of flights: a loss streak long
enough to be rare at the baseline's own loss probability, and an excess drawdown (against the
baseline's mean) in units of ``sd * sqrt(n)``, widened by the uncertainty of that mean. NaN
never reads as bad.

Pure and deterministic: no I/O, no clock.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from autolearn.core.metrics import max_drawdown, summarize
from autolearn.core.model import Trade

__all__ = [
    "ForecastBand",
    "HardLimits",
    "JudgeParams",
    "Outcome",
    "Verdict",
    "VersionTimeline",
    "check_hard_limits",
    "fixed_sample_size",
    "judge",
    "judge_forecast",
    "loss_streak_limit",
    "mean_sequence",
    "sequence_bounds",
    "split_by_arm",
]

_NEEDED_CAP = 1_000_000  # beyond this the estimate is "practically never"


class Outcome(StrEnum):
    """The three-valued verdict (Argo Rollouts: Successful / Failed / Inconclusive)."""

    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True, kw_only=True)
class JudgeParams:
    """How sure, and how different. Margins and the mixture scale are in pooled-sd units."""

    alpha: float = 0.05  # P(any wrong decision) over the whole flight, however often it looks
    # The effect (in sd) the sequence is tuned to detect soonest (0.3 sd = 1.5 pips at sd 5).
    # Measured with a 30 % candidate share: harms of 0.16 sd are caught in a median ~400
    # candidate trades and harms of 0.46 sd in ~55 (bench/bench_judge.py).
    mixture_scale: float = 0.3
    promote_margin_sd: float = 0.0  # promote only when better by more than this
    harm_margin_sd: float = 0.0  # roll back when worse by more than this
    min_candidate: int = 30
    min_baseline: int = 30

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha!r}")
        if not 0 < self.mixture_scale <= 10:
            raise ValueError(f"mixture_scale must be in (0, 10], got {self.mixture_scale!r}")
        for name in ("promote_margin_sd", "harm_margin_sd"):
            value = getattr(self, name)
            if not 0 <= value <= 10:
                raise ValueError(f"{name} must be in [0, 10], got {value!r}")
        if self.min_candidate < 2 or self.min_baseline < 2:
            raise ValueError("min_candidate and min_baseline must be >= 2 (a variance needs 2)")


@dataclass(frozen=True, slots=True, kw_only=True)
class HardLimits:
    """Critical limits on the candidate's trades; any breach fails it at once.

    Each is calibrated so that a change with no true effect trips it in about ``false_alarm``
    of flights that run to their deadline (see :func:`loss_streak_limit`).
    """

    false_alarm: float = 0.005  # per flight of ``horizon`` candidate trades (the deadline)
    loss_beyond_pips: float = 0.5  # a "loss" loses more than this (scratch exits are not losses)
    min_loss_streak: int = 8  # never fewer losses in a row than this, whatever the estimate
    drawdown_sd: float = 4.5  # excess drawdown vs the baseline's mean, in sd * sqrt(n)
    # ... plus this many standard errors of the baseline's mean per candidate trade: the mean
    # is an estimate, and its error accumulates linearly (a fixed before/after baseline of 100
    # trades tripped 13 % of no-effect flights without it: bench/bench_judge.py)
    baseline_mean_z: float = 2.5
    max_drawdown_account: float | None = None  # optional absolute limit (account currency)

    def __post_init__(self) -> None:
        if not 0 < self.false_alarm < 1:
            raise ValueError(f"false_alarm must be in (0, 1), got {self.false_alarm!r}")
        if self.min_loss_streak < 2:
            raise ValueError("min_loss_streak must be >= 2")
        if not (self.loss_beyond_pips >= 0 and self.drawdown_sd > 0 and self.baseline_mean_z >= 0):
            raise ValueError(
                "loss_beyond_pips and baseline_mean_z must be >= 0 and drawdown_sd > 0"
            )
        if self.max_drawdown_account is not None and not self.max_drawdown_account > 0:
            raise ValueError("max_drawdown_account must be > 0 (or null: no absolute limit)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The judge's answer. ``stat`` is ``log Lambda`` at the nearest decision edge.

    ``trades_needed`` is how many more candidate trades the decision would take if the current
    estimate and spreads persisted (0 when decided, ``None`` when it could never decide, e.g. the
    estimate sits on an edge or the baseline is too thin). ``sd`` is the pooled per-trade sd the
    scales were read in.
    """

    outcome: Outcome
    reason: str
    n_candidate: int
    n_baseline: int
    stat: float
    trades_needed: int | None
    estimate: float = math.nan
    lower: float = math.nan
    upper: float = math.nan
    sd: float = math.nan

    def to_record(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return round(x, 6) if math.isfinite(x) else None

        return {
            "outcome": self.outcome.value,
            "reason": self.reason,
            "n_candidate": self.n_candidate,
            "n_baseline": self.n_baseline,
            "stat": num(self.stat),
            "trades_needed": self.trades_needed,
            "estimate": num(self.estimate),
            "lower": num(self.lower),
            "upper": num(self.upper),
            "sd": num(self.sd),
        }


def _half_width(var: float, tau2: float, alpha: float) -> float:
    """Half-width of the normal-mixture SPRT confidence sequence for variance ``var``."""
    return math.sqrt(
        2.0
        * var
        * (var + tau2)
        / tau2
        * (math.log(1.0 / alpha) + 0.5 * math.log((var + tau2) / var))
    )


def mean_sequence(
    values: Sequence[float], *, alpha: float, mixture_scale: float
) -> tuple[float, float]:
    """The one-sample ``1 - alpha`` confidence sequence of the mean, as ``(lower, upper)``.

    The same normal-mixture SPRT as :func:`judge`, on one sample: ``mean +- half_width`` with
    the plug-in variance ``s^2 / n`` and the mixture scale in units of the sample sd, so the
    bounds stay valid however often a caller looks (the policy looks every 15 minutes). NaN for
    fewer than 2 values or a non-finite spread; an exact point when every value is equal.
    """
    s = summarize(values)
    return sequence_bounds(s.n, s.expectancy, s.std, alpha=alpha, mixture_scale=mixture_scale)


def sequence_bounds(
    n: int, mean: float, sd: float, *, alpha: float, mixture_scale: float
) -> tuple[float, float]:
    """:func:`mean_sequence` from a sample's size, mean and sd (ddof 1)."""
    if not (0 < alpha < 1 and mixture_scale > 0):
        raise ValueError(f"alpha in (0, 1) and mixture_scale > 0, got {alpha!r}, {mixture_scale!r}")
    if n < 2 or not math.isfinite(sd) or not math.isfinite(mean):
        return math.nan, math.nan
    if sd == 0:
        return mean, mean
    var = sd * sd
    half = _half_width(var / n, mixture_scale**2 * var, alpha)
    return mean - half, mean + half


def _log_lambda(diff: float, var: float, tau2: float) -> float:
    """log of the mixture likelihood ratio of ``theta = theta0`` given ``diff = est - theta0``."""
    return 0.5 * math.log(var / (var + tau2)) + tau2 * diff * diff / (2.0 * var * (var + tau2))


def judge(candidate: Sequence[float], baseline: Sequence[float], params: JudgeParams) -> Verdict:
    """Compare the candidate's per-trade P/L with the baseline's (see the module docstring)."""
    c, b = summarize(candidate), summarize(baseline)
    n_c, n_b = c.n, b.n

    def undecided(reason: str, needed: int | None) -> Verdict:
        return Verdict(
            outcome=Outcome.INCONCLUSIVE,
            reason=reason,
            n_candidate=n_c,
            n_baseline=n_b,
            stat=math.nan,
            trades_needed=needed,
        )

    if n_b < params.min_baseline:
        return undecided("baseline_too_small", None)
    if n_c < 2:
        return undecided("candidate_too_small", params.min_candidate - n_c)
    var_c, var_b = c.std * c.std, b.std * b.std  # not **2: that raises OverflowError
    pooled_var = ((n_c - 1) * var_c + (n_b - 1) * var_b) / (n_c + n_b - 2)
    if not math.isfinite(pooled_var):
        return undecided("non_finite_pl", None)
    if pooled_var <= 0:
        # Every trade identical: the difference is exact, no uncertainty to test.
        pooled_var = var_c = var_b = 1e-12
    sd = math.sqrt(pooled_var)
    var = var_c / n_c + var_b / n_b
    tau2 = params.mixture_scale**2 * pooled_var
    estimate = c.expectancy - b.expectancy
    half = _half_width(var, tau2, params.alpha)
    harm_edge, promote_edge = -params.harm_margin_sd * sd, params.promote_margin_sd * sd
    lower, upper = estimate - half, estimate + half
    if n_c < params.min_candidate:
        outcome, reason = Outcome.INCONCLUSIVE, "candidate_too_small"
    elif upper < harm_edge:
        outcome, reason = Outcome.FAIL, "worse_than_lkg"
    elif lower > promote_edge:
        outcome, reason = Outcome.PASS, "better_than_lkg"
    else:
        outcome, reason = Outcome.INCONCLUSIVE, "within_uncertainty"
    # the edge the estimate is heading for decides how far away the decision is
    edge = promote_edge if estimate > (harm_edge + promote_edge) / 2 else harm_edge
    stat = _log_lambda(estimate - edge, var, tau2)
    needed = (
        0
        if outcome is not Outcome.INCONCLUSIVE
        else _trades_needed(estimate - edge, var_c, var_b, n_c, n_b, tau2, params)
    )
    return Verdict(
        outcome=outcome,
        reason=reason,
        n_candidate=n_c,
        n_baseline=n_b,
        stat=stat,
        trades_needed=needed,
        estimate=estimate,
        lower=lower,
        upper=upper,
        sd=sd,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ForecastBand:
    """A counterfactual change's pre-registered per-trade effect (candidate minus current, pips).

    ``low``/``high`` bound the forecast with its own uncertainty; ``confirm_trades`` is how many
    candidate trades without a contradiction confirm it.
    """

    estimate: float
    low: float
    high: float
    confirm_trades: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low <= self.high):
            raise ValueError(f"forecast band must be finite with low <= high: {self!r}")
        if self.confirm_trades < 2:
            raise ValueError(f"confirm_trades must be >= 2, got {self.confirm_trades!r}")


def judge_forecast(
    candidate: Sequence[float],
    baseline: Sequence[float],
    band: ForecastBand,
    params: JudgeParams,
) -> Verdict:
    """Judge a counterfactual change live against its forecast (the guardrail, not the evidence).

    Why not :func:`judge`: a loosened entry threshold admits extra signals that are worth less
    per trade than the ones already admitted but more than nothing, so the candidate's per-trade
    mean is lower *by design* while its total is higher; "worse per trade" would roll back every
    good loosening. The evidence for the change is the counterfactual (thousands of paired
    signals); the live trades only check that the world behaves as forecast:

    - FAIL ``cf_contradicted``: the live confidence sequence of the per-trade difference (the
      same always-valid sequence as :func:`judge`, so looking every run costs nothing) lies
      wholly below the forecast band: the model was wrong, roll back;
    - PASS ``cf_confirmed``: ``confirm_trades`` candidate trades (at least ``min_candidate``)
      and no contradiction: promote, so the family can take its next step within days instead
      of the 1,500 trades a per-trade proof needs at sd 5;
    - INCONCLUSIVE ``cf_within_forecast`` (or the sample-size reasons of :func:`judge`).

    Hard limits are the caller's, checked before this as for every flight.
    """
    live = judge(candidate, baseline, params)
    if live.reason in ("baseline_too_small", "non_finite_pl") or live.n_candidate < 2:
        return live
    if live.n_candidate >= params.min_candidate and live.upper < band.low:
        outcome, reason = Outcome.FAIL, "cf_contradicted"
    elif live.n_candidate >= max(band.confirm_trades, params.min_candidate):
        outcome, reason = Outcome.PASS, "cf_confirmed"
    else:
        outcome, reason = Outcome.INCONCLUSIVE, "cf_within_forecast"
    needed = (
        0
        if outcome is not Outcome.INCONCLUSIVE
        else max(band.confirm_trades, params.min_candidate) - live.n_candidate
    )
    return Verdict(
        outcome=outcome,
        reason=reason,
        n_candidate=live.n_candidate,
        n_baseline=live.n_baseline,
        stat=live.upper - band.low,
        trades_needed=needed,
        estimate=live.estimate,
        lower=live.lower,
        upper=live.upper,
        sd=live.sd,
    )


def _trades_needed(
    gap: float,
    var_c: float,
    var_b: float,
    n_c: int,
    n_b: int,
    tau2: float,
    params: JudgeParams,
) -> int | None:
    """Least extra candidate trades k with half_width(n_c + k) < |gap| (None: never).

    The baseline grows with the candidate in the same proportion (concurrent arms), so the
    variance shrinks as ``1 / (n_c + k)`` on both sides.
    """
    floor_needed = max(0, params.min_candidate - n_c)
    if gap == 0:
        return None

    def decided(k: int) -> bool:
        grow = (n_c + k) / n_c
        var = var_c / (n_c + k) + var_b / (n_b * grow)
        return _half_width(var, tau2, params.alpha) < abs(gap)

    if not decided(_NEEDED_CAP):
        return None
    lo, hi = 0, 1
    while not decided(hi):
        lo, hi = hi, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        if decided(mid):
            hi = mid
        else:
            lo = mid + 1
    return max(hi, floor_needed)


def fixed_sample_size(
    effect_sd: float, alpha: float, power: float = 0.95, baseline_ratio: float = 1.0
) -> int:
    """Candidate trades a one-sided fixed-n z-test needs to detect ``effect_sd`` (in sd units).

    The yardstick a sequential test is measured against: with ``baseline_ratio`` baseline trades
    per candidate trade, ``n = (z_alpha + z_power)^2 (1 + 1/ratio) / effect^2``.
    """
    from statistics import NormalDist  # stdlib: no scipy import for one quantile

    z = NormalDist().inv_cdf(1 - alpha) + NormalDist().inv_cdf(power)
    return math.ceil(z * z * (1 + 1 / baseline_ratio) / (effect_sd * effect_sd))


def loss_streak_limit(p_loss: float, limits: HardLimits, horizon: int) -> int:
    """The loss-streak length a no-effect candidate reaches in ``false_alarm`` of flights.

    Expected runs of ``k`` losses in ``n`` trials are about ``n (1 - p) p^k``; the limit is the
    least ``k`` that makes this ``false_alarm`` (at P(loss) 0.48 over 1,500 trades: 16).
    """
    p = min(max(p_loss, 1e-6), 0.999)
    k = math.log(max(horizon, 1) * (1 - p) / limits.false_alarm) / math.log(1 / p)
    return max(limits.min_loss_streak, math.ceil(k))


def _trailing_losses(values: Sequence[float], beyond: float) -> int:
    streak = 0
    for v in reversed(values):
        if v < -beyond:
            streak += 1
        else:
            break
    return streak


def _excess_drawdown(values: Sequence[float], baseline_mean: float) -> float:
    """The candidate's largest fall from a peak after subtracting the baseline's mean per trade."""
    return max_drawdown([v - baseline_mean for v in values])


def check_hard_limits(
    candidate_pips: Sequence[float],
    baseline_pips: Sequence[float],
    limits: HardLimits,
    *,
    horizon: int,
    candidate_account: Sequence[float] = (),
) -> Verdict | None:
    """A FAIL verdict when the candidate breached a critical limit, else ``None``.

    The scales come from the baseline (its loss probability, mean and sd); a baseline too thin
    to estimate them (< 10 trades) leaves only the optional absolute account limit.
    """
    n = len(candidate_pips)
    reason, stat = "", math.nan
    base = summarize(baseline_pips)
    if base.n >= 10 and math.isfinite(base.std):
        p_loss = sum(1 for v in baseline_pips if v < -limits.loss_beyond_pips) / base.n
        streak = _trailing_losses(candidate_pips, limits.loss_beyond_pips)
        excess = _excess_drawdown(candidate_pips, base.expectancy)
        sd = max(base.std, 1e-9)
        limit = sd * (
            limits.drawdown_sd * math.sqrt(max(n, 1))
            + limits.baseline_mean_z * n / math.sqrt(base.n)
        )
        if streak >= loss_streak_limit(p_loss, limits, horizon):
            reason, stat = "hard_limit_loss_streak", float(streak)
        elif n >= 10 and excess >= limit:
            reason, stat = "hard_limit_drawdown", excess / limit
    if not reason and limits.max_drawdown_account is not None:
        drawdown = max_drawdown(candidate_account)
        if drawdown >= limits.max_drawdown_account:
            reason, stat = "hard_limit_drawdown_account", drawdown
    if not reason:
        return None
    return Verdict(
        outcome=Outcome.FAIL,
        reason=reason,
        n_candidate=n,
        n_baseline=base.n,
        stat=stat,
        trades_needed=0,
    )


@dataclass(frozen=True, slots=True)
class VersionTimeline:
    """Which config version was live when: ``points`` are (at, version) in time order.

    Used only for legacy trades whose ``config_version`` is empty: a trade belongs to the version
    live at its *entry* time (it was opened under it). Before the first point, ``initial``.
    """

    points: tuple[tuple[datetime, str], ...]
    initial: str

    @classmethod
    def from_changes(cls, changes: Iterable[tuple[datetime, str, str]]) -> VersionTimeline:
        """From (at, version_before, version_after) of applied changes, in any order."""
        ordered = sorted(changes, key=lambda c: c[0])
        if not ordered:
            return cls((), "")
        return cls(tuple((at, after) for at, _, after in ordered), ordered[0][1])

    def at(self, when: datetime) -> str:
        times = [p[0] for p in self.points]
        index = bisect.bisect_right(times, when)
        return self.initial if index == 0 else self.points[index - 1][1]


def split_by_arm(
    trades: Iterable[Trade],
    arm_of_version: Callable[[str], str | None],
    timeline: VersionTimeline,
) -> tuple[dict[str, list[Trade]], int]:
    """Group trades into arms by the version they were opened under.

    The pinned ``config_version`` wins; an empty one falls back to the timeline at ``entry_at``.
    Returns the arms and the count of trades that belong to no arm (unknown version).
    """
    arms: dict[str, list[Trade]] = {}
    unattributed = 0
    for trade in trades:
        version = trade.config_version or timeline.at(trade.entry_at)
        arm = arm_of_version(version) if version else None
        if arm is None:
            unattributed += 1
        else:
            arms.setdefault(arm, []).append(trade)
    return arms, unattributed
