"""The shared judge: is a candidate config version worse, as good, or undecided vs the LKG?

Every mechanism that changes knobs (tuner, scalp trainer, autotune) judges its change here, on
the trades *opened under* the candidate version against the trades opened under the
last-known-good (LKG) version. The judge knows nothing about knobs or mechanisms: the caller says
which versions form which arm (:func:`split_by_arm`), and passes per-trade P/L.

Why an always-valid confidence sequence (mixture SPRT, Johari, Pekelis & Walsh, "Always Valid
Inference", 2015/2019) rather than a fixed-n test or a plain Bayesian posterior: the tuner looks
at the evidence every 10 minutes and stops as soon as it can decide. A fixed-n test (or a flat
Bayesian posterior read as a test) peeked at every run inflates its false-alarm rate without
bound; the normal-mixture SPRT stays valid under continuous monitoring (Ville's inequality), has a
closed form, and needs no prior chosen per strategy. We use it in its Gaussian (CLT) form on the
difference of mean P/L, ``theta = mean(candidate) - mean(baseline)``, with the plug-in variance
``V = s_c^2/n_c + s_b^2/n_b``. The set of ``theta0`` with ``Lambda(theta0) < 1/alpha`` is the
always-valid ``1 - alpha`` confidence sequence ``estimate +- half_width``; the practical band
(Kayenta's "the interval must exclude a band") turns it into three outcomes:

- FAIL   the whole sequence lies below ``-band``: the candidate is worse by more than the band;
- PASS   the whole sequence lies above ``-band``: not worse by more than the band (non-inferior);
- INCONCLUSIVE otherwise, or below the minimum sample sizes, with an estimate of the candidate
  trades still needed if the current estimate and spreads persist.

Hard limits (drawdown in account currency, loss streak) bypass the statistics (Kayenta's
"critical" metric). NaN never reads as bad: insufficient data is INCONCLUSIVE.

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

from autolearn.core.metrics import max_drawdown, summarize, trailing_loss_streak
from autolearn.core.model import Trade

__all__ = [
    "HardLimits",
    "JudgeParams",
    "Outcome",
    "Verdict",
    "VersionTimeline",
    "check_hard_limits",
    "judge",
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
    """How sure and how different. ``band`` is in the units of the P/L passed in (pips)."""

    # Practical band: ~0.25-0.5 sd of per-trade P/L. Narrower bands need hundreds of baseline
    # trades to ever show non-inferiority (measured: tests/tuner/test_judge.py).
    band: float = 1.0
    alpha: float = 0.05
    mixture_scale: float = 0.3  # mixture sd as a fraction of the pooled P/L sd (expected effect)
    min_candidate: int = 30
    min_baseline: int = 30

    def __post_init__(self) -> None:
        if not self.band >= 0:
            raise ValueError(f"band must be >= 0, got {self.band!r}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha!r}")
        if not self.mixture_scale > 0:
            raise ValueError(f"mixture_scale must be > 0, got {self.mixture_scale!r}")
        if self.min_candidate < 2 or self.min_baseline < 2:
            raise ValueError("min_candidate and min_baseline must be >= 2 (a variance needs 2)")


@dataclass(frozen=True, slots=True, kw_only=True)
class HardLimits:
    """Critical limits on the candidate's trades; any breach fails it at once."""

    max_drawdown_account: float = 3000.0  # account currency (JPY for QuantRabbit)
    max_loss_streak: int = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The judge's answer. ``stat`` is ``log Lambda`` at the band edge (>= log(1/alpha) decides).

    ``trades_needed`` is how many more candidate trades the decision would take if the current
    estimate and spreads persisted (0 when decided, ``None`` when it could never decide, e.g. the
    estimate sits on the band edge or the baseline is too thin).
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
    pooled_var = ((n_c - 1) * c.std**2 + (n_b - 1) * b.std**2) / (n_c + n_b - 2)
    var_c, var_b = c.std**2, b.std**2
    if pooled_var <= 0:
        # Every trade identical: the difference is exact, no uncertainty to test.
        pooled_var = var_c = var_b = 1e-12
    var = var_c / n_c + var_b / n_b
    tau2 = params.mixture_scale**2 * pooled_var
    estimate = c.expectancy - b.expectancy
    half = _half_width(var, tau2, params.alpha)
    edge = -params.band
    stat = _log_lambda(estimate - edge, var, tau2)
    lower, upper = estimate - half, estimate + half
    if n_c < params.min_candidate:
        outcome, reason = Outcome.INCONCLUSIVE, "candidate_too_small"
    elif upper < edge:
        outcome, reason = Outcome.FAIL, "worse_than_lkg"
    elif lower > edge:
        outcome, reason = Outcome.PASS, "not_worse_than_lkg"
    else:
        outcome, reason = Outcome.INCONCLUSIVE, "within_uncertainty"
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
    """Least extra candidate trades k with half_width(n_c + k) < |gap| (None: never)."""
    floor_needed = max(0, params.min_candidate - n_c)
    if gap == 0:
        return None

    def decided(k: int) -> bool:
        var = var_c / (n_c + k) + var_b / n_b
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


def check_hard_limits(candidate_account: Sequence[float], limits: HardLimits) -> Verdict | None:
    """A FAIL verdict when the candidate breached a critical limit, else ``None``."""
    n = len(candidate_account)
    drawdown = max_drawdown(candidate_account)
    streak = trailing_loss_streak(candidate_account)
    reason = ""
    stat = math.nan
    if drawdown >= limits.max_drawdown_account:
        reason, stat = "hard_limit_drawdown", drawdown
    elif streak >= limits.max_loss_streak:
        reason, stat = "hard_limit_loss_streak", float(streak)
    if not reason:
        return None
    return Verdict(
        outcome=Outcome.FAIL,
        reason=reason,
        n_candidate=n,
        n_baseline=0,
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
