"""Choose on one half of the days, confirm on the other: the statistics every chooser shares.

Given a matrix of per-item paired differences ``diff[g, i]`` (grid value ``g`` minus the current
value, on the same signal or trade ``i``) and each item's day, the chooser

1. sums the differences per day (days are the independent units: signals and trades within a day
   share the market's mood and correlate, so a per-signal interval would be too narrow);
2. picks the grid value with the best mean daily difference on the SELECTION half (even day
   positions) among the values within ``max_steps`` of the current one;
3. CONFIRMS it on the other half with a two-sided Student-t interval over that half's daily sums,
   and moves only when the whole interval lies above zero.

Why split-half: the best of 20 in-sample means is biased upwards (selection bias, the winner's
curse); an interval computed on the same days would cover zero far less often than it claims.
The confirmation half played no part in the choice, so its interval keeps its nominal coverage:
under no true difference the chooser moves with probability about ``(1 - confidence) / 2``.

Pure: numpy and ``core.metrics``; no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from autolearn.core.metrics import expectancy_interval

__all__ = [
    "CF_CURRENT_OFF_GRID",
    "CF_IMPROVES",
    "CF_INSUFFICIENT",
    "CF_NO_CONFIRMED_GAIN",
    "SplitResult",
    "check_grid",
    "grid_index",
    "split_half_choice",
]

CF_IMPROVES = "cf_improves"
CF_NO_CONFIRMED_GAIN = "cf_no_confirmed_gain"
CF_INSUFFICIENT = "cf_insufficient"
CF_CURRENT_OFF_GRID = "cf_current_off_grid"


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitResult:
    """The chooser's outcome: grid indices and the confirmation-half evidence (pips per day)."""

    moved: bool
    code: str
    detail: str
    candidate: int  # best reachable index on the selection half (== current: nothing better)
    best_unconstrained: int  # best index on the whole grid, selection half (for the detail)
    selection_mean: float
    mean_diff_per_day: float
    low: float
    high: float
    confirm_days: int
    confirm_mask: NDArray[np.bool_]  # per item: is its day in the confirmation half


def check_grid(grid: object, name: str = "grid") -> NDArray[np.float64]:
    """The grid as a strictly increasing finite float array (ValueError naming the problem)."""
    arr = np.asarray(grid, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} values must be finite, got {arr.tolist()}")
    if arr.size > 1 and not bool(np.all(np.diff(arr) > 0)):
        raise ValueError(f"{name} must be strictly increasing, got {arr.tolist()}")
    return arr


def grid_index(grid: NDArray[np.float64], value: float) -> int | None:
    """The index of ``value`` on the grid (relative tolerance 1e-9), None when off the grid."""
    if not math.isfinite(value):
        return None
    k = int(np.argmin(np.abs(grid - value)))
    return k if abs(grid[k] - value) <= 1e-9 * max(1.0, abs(value)) else None


def _best(
    means: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    current: int,
    strictness: NDArray[np.float64],
) -> int:
    """Highest mean among ``allowed``; ties go to fewer steps, then to the stricter value."""
    steps = np.abs(np.arange(means.size) - current)
    order = np.lexsort((-strictness, steps, -means))  # last key is the primary one
    return int(next(k for k in order if allowed[k]))


def split_half_choice(
    diff: NDArray[np.float64],
    day_pos: NDArray[np.int64],
    n_days: int,
    *,
    current: int,
    max_steps: int,
    strictness: NDArray[np.float64],
    confidence: float,
    min_days: int,
    fmt: str = "{:g}",
    grid: NDArray[np.float64] | None = None,
) -> SplitResult:
    """Select on even day positions, confirm on odd ones (see the module docstring).

    Args:
        diff: shape (grid values, items); row ``current`` is all zeros by construction.
        day_pos: each item's day as a position 0..n_days-1 in time order.
        strictness: per grid value, larger = more conservative (trades less); breaks ties.
        grid: the grid values, only to write the detail.
    """
    values = grid if grid is not None else np.arange(diff.shape[0], dtype=np.float64)
    confirm_days = n_days // 2
    confirm_mask = (day_pos % 2) == 1
    if n_days < min_days or confirm_days < 2:
        return _insufficient(
            current,
            confirm_days,
            confirm_mask,
            f"{n_days} days with usable items < {max(min_days, 4)}",
        )
    daily = np.stack([np.bincount(day_pos, weights=row, minlength=n_days) for row in diff])
    selection = daily[:, 0::2].mean(axis=1)
    steps = np.abs(np.arange(diff.shape[0]) - current)
    reach = steps <= max_steps
    cand = _best(selection, reach, current, strictness)
    best_all = _best(selection, np.ones_like(reach), current, strictness)
    unconstrained = (
        f"; best on the whole grid {fmt.format(values[best_all])} "
        f"({selection[best_all]:+.3f} pips/day on the selection half)"
    )
    if cand == current or selection[cand] <= 0.0:
        return SplitResult(
            moved=False,
            code=CF_NO_CONFIRMED_GAIN,
            detail=(
                f"no value within {max_steps} steps beats the current "
                f"{fmt.format(values[current])} on the selection half" + unconstrained
            ),
            candidate=current,
            best_unconstrained=best_all,
            selection_mean=0.0,
            mean_diff_per_day=0.0,
            low=0.0,
            high=0.0,
            confirm_days=confirm_days,
            confirm_mask=confirm_mask,
        )
    conf = daily[cand, 1::2]
    mean = float(conf.mean())
    low, high = expectancy_interval(conf.tolist(), confidence)
    moved = math.isfinite(low) and low > 0.0 and mean > 0.0
    verdict = "confirmed" if moved else "not confirmed"
    detail = (
        f"{fmt.format(values[cand])} vs current {fmt.format(values[current])}: "
        f"{selection[cand]:+.3f} pips/day on {n_days - confirm_days} selection days, "
        f"{mean:+.3f} [{low:+.3f}, {high:+.3f}] pips/day ({confidence:.0%}) on "
        f"{confirm_days} confirmation days: {verdict}" + unconstrained
    )
    return SplitResult(
        moved=moved,
        code=CF_IMPROVES if moved else CF_NO_CONFIRMED_GAIN,
        detail=detail,
        candidate=cand,
        best_unconstrained=best_all,
        selection_mean=float(selection[cand]),
        mean_diff_per_day=mean,
        low=float(low),
        high=float(high),
        confirm_days=confirm_days,
        confirm_mask=confirm_mask,
    )


def _insufficient(
    current: int, confirm_days: int, confirm_mask: NDArray[np.bool_], why: str
) -> SplitResult:
    return SplitResult(
        moved=False,
        code=CF_INSUFFICIENT,
        detail=why,
        candidate=current,
        best_unconstrained=current,
        selection_mean=math.nan,
        mean_diff_per_day=math.nan,
        low=math.nan,
        high=math.nan,
        confirm_days=confirm_days,
        confirm_mask=confirm_mask,
    )
