"""Do the candles explain the bot's recorded P/L? The guard on the counterfactual model.

The taken signals are simulated like every other signal; their recorded outcomes (the broker's
P/L in pips of the trade each one opened) are the ground truth. If the two disagree, the model's
assumptions (next-bar-open fill, mid +/- half spread, SL before TP, independent positions, the
right clock and instrument) do not hold for this bot, and no counterfactual choice should be
trusted: the family freezes with ``counterfactual_mismatch``.

Thresholds (per pair, after dropping pairs where either side is NaN):

* the mean absolute difference must not exceed ``tolerance_pips``: slippage and a spread that
  differs from the modelled one move a fill by a pip or two, while a wrong clock or instrument
  moves it by the order of the trade's own sd (5+ pips) on most trades;
* at most ``max_share_off`` (default 20 %) of the pairs may differ by more than
  ``tolerance_pips``: a few trades may differ a lot (a broker-side close, a news spike filled
  far from the bar's range) without the model being wrong.

Fewer than ``min_trades`` pairs cannot show a mismatch: ``ok`` is True with code
``cf_unverified`` (a strict caller refuses that code; see ``detail``). Otherwise ``ok`` is True
with ``cf_verified`` or False with ``counterfactual_mismatch``.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CF_UNVERIFIED",
    "CF_VERIFIED",
    "COUNTERFACTUAL_MISMATCH",
    "MismatchCheck",
    "check_recorded",
]

COUNTERFACTUAL_MISMATCH = "counterfactual_mismatch"
CF_VERIFIED = "cf_verified"
CF_UNVERIFIED = "cf_unverified"


@dataclass(frozen=True, slots=True, kw_only=True)
class MismatchCheck:
    """The check's outcome: ``n`` compared pairs, their mean absolute and signed difference."""

    ok: bool
    code: str
    detail: str
    n: int
    mean_abs_diff: float
    mean_diff: float = math.nan
    share_off: float = math.nan
    n_excluded: int = 0


def check_recorded(
    simulated: NDArray[np.float64],
    recorded: NDArray[np.float64],
    *,
    tolerance_pips: float,
    max_share_off: float = 0.2,
    min_trades: int = 10,
) -> MismatchCheck:
    """Compare simulated and recorded pips of the same taken signals (see the module docstring).

    Raises:
        ValueError: arrays of different shapes or a tolerance that is not finite and > 0.
    """
    sim = np.asarray(simulated, dtype=np.float64)
    rec = np.asarray(recorded, dtype=np.float64)
    if sim.ndim != 1 or sim.shape != rec.shape:
        raise ValueError(
            f"simulated and recorded must be 1-D of one length: {sim.shape}, {rec.shape}"
        )
    if not (math.isfinite(tolerance_pips) and tolerance_pips > 0):
        raise ValueError(f"tolerance_pips must be finite and > 0, got {tolerance_pips!r}")
    if not 0.0 <= max_share_off < 1.0:
        raise ValueError(f"max_share_off must be in [0, 1), got {max_share_off!r}")
    both = np.isfinite(sim) & np.isfinite(rec)
    diff = sim[both] - rec[both]
    n, excluded = int(diff.size), int(both.size - diff.size)
    if n < min_trades:
        return MismatchCheck(
            ok=True,
            code=CF_UNVERIFIED,
            n=n,
            mean_abs_diff=_mean(np.abs(diff)),
            mean_diff=_mean(diff),
            n_excluded=excluded,
            detail=(
                f"{n} taken signals with simulated and recorded P/L < {min_trades} "
                f"({excluded} excluded): the model cannot be checked yet"
            ),
        )
    mad = float(np.abs(diff).mean())
    share = float(np.mean(np.abs(diff) > tolerance_pips))
    bad = mad > tolerance_pips or share > max_share_off
    detail = (
        f"{n} taken signals ({excluded} excluded): mean |simulated - recorded| {mad:.2f} pips "
        f"(limit {tolerance_pips:g}), mean difference {float(diff.mean()):+.2f}, "
        f"{share:.0%} off by more than {tolerance_pips:g} pips (limit {max_share_off:.0%})"
    )
    return MismatchCheck(
        ok=not bad,
        code=COUNTERFACTUAL_MISMATCH if bad else CF_VERIFIED,
        detail=detail,
        n=n,
        mean_abs_diff=mad,
        mean_diff=float(diff.mean()),
        share_off=share,
        n_excluded=excluded,
    )


def _mean(x: NDArray[np.float64]) -> float:
    return float(x.mean()) if x.size else math.nan
