"""Entry-threshold choice from counterfactual signal outcomes, paired on the same signals.

A threshold knob admits a signal when its score is ``>= value`` (``admits="above"``: a higher
value is stricter) or ``<= value`` (``"below"``). Every logged signal has a simulated outcome
(``outcomes.signal_outcomes``), so for a grid value ``v`` the paired difference against the
current value on signal ``i`` is ``d_i(v) = (admitted_v(i) - admitted_current(i)) * pips_i``: only
the signals one value admits and the other does not contribute, which is why the paired
difference has a much smaller variance than comparing two sets of trades.

The differences are summed per day and the choice is made on one half of the days and confirmed
on the other (``_split``: why split-half, why per day). The value moves only when the confirmation
interval lies wholly above zero, so it never moves to a value whose confirmation mean is <= 0.

All evidence numbers in :class:`EntryChoice` come from the confirmation half (the half that played
no part in the choice), so they are unbiased forecasts for the live judge to check.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

from autolearn.counterfactual._split import (
    CF_CURRENT_OFF_GRID,
    CF_IMPROVES,
    CF_INSUFFICIENT,
    CF_NO_CONFIRMED_GAIN,
    check_grid,
    grid_index,
    split_half_choice,
)

__all__ = [
    "CF_CURRENT_OFF_GRID",
    "CF_IMPROVES",
    "CF_INSUFFICIENT",
    "CF_NO_CONFIRMED_GAIN",
    "MIN_SIGNALS",
    "EntryChoice",
    "admitted",
    "choose_threshold",
]

MIN_SIGNALS = 30  # fewer admitted signals than this at every reachable value: too little to judge


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryChoice:
    """The chosen threshold and its evidence as plain numbers (pips; per day where named).

    ``value == current`` unless ``code == "cf_improves"``. ``candidate`` is the value the evidence
    is about (the best reachable one on the selection half; ``current`` when none beat it).
    ``trades_*`` and ``mean_pips_*`` are admitted counts and the mean simulated pips per admitted
    signal on the confirmation half; ``mean_diff_per_day`` with ``low``/``high`` is candidate
    minus current per confirmation day. NaN where no evidence was computed.
    """

    value: float
    code: str
    detail: str
    candidate: float
    best_unconstrained: float
    n_signals: int
    n_excluded: int
    n_days: int
    confirm_days: int
    mean_diff_per_day: float
    low: float
    high: float
    trades_current: int
    trades_candidate: int
    mean_pips_current: float
    mean_pips_candidate: float

    def as_dict(self) -> dict[str, float | int | str]:
        """The fields as a JSON-ready dict (NaN stays NaN: the record writer decides)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def admitted(scores: NDArray[np.float64], value: float, admits: str) -> NDArray[np.bool_]:
    """Which signals a threshold ``value`` admits (``admits`` is ``"above"`` or ``"below"``)."""
    if admits == "above":
        return scores >= value
    if admits == "below":
        return scores <= value
    raise ValueError(f"admits must be 'above' or 'below', got {admits!r}")


def _check_arrays(
    scores: NDArray[np.float64], pips: NDArray[np.float64], day: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    s = np.asarray(scores, dtype=np.float64)
    p = np.asarray(pips, dtype=np.float64)
    d = np.asarray(day, dtype=np.int64)
    if s.ndim != 1 or s.shape != p.shape or s.shape != d.shape:
        raise ValueError(
            f"scores, pips and day must be 1-D of one length, got {s.shape}, {p.shape}, {d.shape}"
        )
    return s, p, d


def choose_threshold(
    *,
    scores: NDArray[np.float64],
    pips: NDArray[np.float64],
    day: NDArray[np.int64],
    grid: Sequence[float],
    current: float,
    admits: str,
    max_steps: int,
    confidence: float = 0.95,
    min_days: int = 6,
    min_signals: int = MIN_SIGNALS,
) -> EntryChoice:
    """Choose a threshold within ``max_steps`` grid steps of ``current`` (split-half, per day).

    Args:
        scores: each signal's score for this knob (NaN: the signal lacks it; excluded, counted).
        pips: each signal's simulated outcome (NaN: could not be placed; excluded, counted).
        day: each signal's day (any integer label, e.g. UTC epoch days); days are the units.
        grid: the knob's values, strictly increasing; ``current`` must be one of them.
        admits: ``"above"`` or ``"below"`` (see :func:`admitted`).
        max_steps: the furthest move allowed, in grid steps.

    Returns ``cf_improves`` (moved), ``cf_no_confirmed_gain``, ``cf_insufficient`` (fewer than
    ``min_days`` days or fewer than ``min_signals`` admitted signals at every reachable value)
    or ``cf_current_off_grid``; every code but the first keeps ``value == current``.

    Raises:
        ValueError: arrays of different lengths, a bad grid, ``admits``, ``max_steps`` or
            ``confidence`` (caller bugs, not evidence).
    """
    s, p, d = _check_arrays(scores, pips, day)
    values = check_grid(grid)
    if admits not in ("above", "below"):
        raise ValueError(f"admits must be 'above' or 'below', got {admits!r}")
    if isinstance(max_steps, bool) or int(max_steps) != max_steps or max_steps < 0:
        raise ValueError(f"max_steps must be a whole number >= 0, got {max_steps!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    usable = np.isfinite(s) & np.isfinite(p)
    n_excluded = int(usable.size - np.count_nonzero(usable))
    s, p, d = s[usable], p[usable], d[usable]
    days, day_pos = np.unique(d, return_inverse=True)
    base = {"n_signals": int(s.size), "n_excluded": n_excluded, "n_days": int(days.size)}
    cur = grid_index(values, current)
    if cur is None:
        detail = f"current value {current!r} is not on the grid {values.tolist()}"
        return _no_evidence(current, CF_CURRENT_OFF_GRID, detail, base)
    masks = np.stack([admitted(s, float(v), admits) for v in values])  # (grid, signals)
    reach = np.abs(np.arange(values.size) - cur) <= max_steps
    most = int(masks[reach].sum(axis=1).max())
    if most < min_signals:
        detail = f"at most {most} admitted signals within {max_steps} steps < {min_signals}"
        return _no_evidence(current, CF_INSUFFICIENT, detail, base)
    diff = (masks.astype(np.float64) - masks[cur]) * p
    strictness = values if admits == "above" else -values
    res = split_half_choice(
        diff,
        day_pos.astype(np.int64),
        int(days.size),
        current=cur,
        max_steps=int(max_steps),
        strictness=strictness,
        confidence=confidence,
        min_days=min_days,
        grid=values,
    )
    conf = res.confirm_mask
    adm_cur, adm_cand = masks[cur] & conf, masks[res.candidate] & conf
    return EntryChoice(
        value=float(values[res.candidate]) if res.moved else current,
        code=res.code,
        detail=f"{s.size} signals ({n_excluded} excluded), admits {admits}: {res.detail}",
        candidate=float(values[res.candidate]),
        best_unconstrained=float(values[res.best_unconstrained]),
        **base,
        confirm_days=res.confirm_days,
        mean_diff_per_day=res.mean_diff_per_day,
        low=res.low,
        high=res.high,
        trades_current=int(adm_cur.sum()),
        trades_candidate=int(adm_cand.sum()),
        mean_pips_current=_mean(p[adm_cur]),
        mean_pips_candidate=_mean(p[adm_cand]),
    )


def _mean(x: NDArray[np.float64]) -> float:
    return float(x.mean()) if x.size else math.nan


def _no_evidence(current: float, code: str, detail: str, base: dict[str, int]) -> EntryChoice:
    return EntryChoice(
        value=current,
        code=code,
        detail=detail,
        candidate=current,
        best_unconstrained=current,
        **base,
        confirm_days=base["n_days"] // 2,
        mean_diff_per_day=math.nan,
        low=math.nan,
        high=math.nan,
        trades_current=0,
        trades_candidate=0,
        mean_pips_current=math.nan,
        mean_pips_candidate=math.nan,
    )
