"""Exit-parameter choice: the bot's own trades re-simulated from their entry under other exits.

For an exit knob (``sl_pips``, ``tp_pips`` or ``timeout_bars``) every trade the bot took is
replayed from its entry bar with the candidate value (the other two parameters as the trade had
them), with the same kernel and rules as the signal outcomes (``_kernel``). The paired difference
on trade ``i`` is ``pips_i(v) - pips_i(current)``; sums per day, choice on one half of the days
and confirmation on the other, exactly as for entry thresholds (``_split``). Because positions are
simulated independently, a longer hold that would have blocked the bot's next entry is not
modelled: ``mismatch.check_recorded`` guards the model at the current value.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import ArrayLike, NDArray

from autolearn.backtest.candles import Candles
from autolearn.counterfactual import _kernel
from autolearn.counterfactual._split import (
    CF_CURRENT_OFF_GRID,
    CF_INSUFFICIENT,
    check_grid,
    grid_index,
    split_half_choice,
)
from autolearn.counterfactual.outcomes import bar_half_spread

__all__ = ["EXIT_PARAMS", "MIN_TRADES", "ExitChoice", "choose_exit", "resimulate_exits"]

EXIT_PARAMS = ("sl_pips", "tp_pips", "timeout_bars")
MIN_TRADES = 30  # fewer re-simulated trades than this: too little to judge


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitChoice:
    """The chosen exit value and its evidence (confirmation half; pips, per day where named).

    ``value == current`` unless ``code == "cf_improves"``; ``candidate`` is the value the
    evidence is about. ``mean_pips_*`` is the mean simulated pips per trade on the confirmation
    half under the current and the candidate value.
    """

    param: str
    value: float
    code: str
    detail: str
    candidate: float
    best_unconstrained: float
    n_trades: int
    n_excluded: int
    n_days: int
    confirm_days: int
    mean_diff_per_day: float
    low: float
    high: float
    mean_pips_current: float
    mean_pips_candidate: float

    def as_dict(self) -> dict[str, float | int | str]:
        """The fields as a JSON-ready dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def resimulate_exits(
    candles: Candles,
    entry_bar: NDArray[np.int64],
    side: NDArray[np.int8],
    *,
    sl_pips: ArrayLike,
    tp_pips: ArrayLike,
    timeout_bars: ArrayLike,
    spread_pips: float,
) -> NDArray[np.float64]:
    """Simulated pips per trade entering at the open of ``entry_bar`` (NaN if outside candles).

    ``side`` is +1/-1; ``sl_pips``/``tp_pips`` (0 = none) and ``timeout_bars`` (0 = none) are
    scalars or one value per trade.
    """
    e = np.asarray(entry_bar, dtype=np.int64)
    m = e.shape[0]
    pip = candles.pip
    _, _, _, pips, _ = _kernel.simulate_entries(
        candles.open,
        candles.high,
        candles.low,
        candles.close,
        e,
        np.asarray(side, dtype=np.int8),
        np.broadcast_to(np.asarray(sl_pips, np.float64), (m,)) * pip,
        np.broadcast_to(np.asarray(tp_pips, np.float64), (m,)) * pip,
        np.ascontiguousarray(np.broadcast_to(np.asarray(timeout_bars, np.int64), (m,))),
        bar_half_spread(candles, spread_pips),
        pip,
    )
    return np.asarray(pips, dtype=np.float64)


def choose_exit(
    *,
    candles: Candles,
    entry_bar: NDArray[np.int64],
    side: NDArray[np.int8],
    day: NDArray[np.int64],
    param: str,
    grid: Sequence[float],
    current: float,
    sl_pips: ArrayLike,
    tp_pips: ArrayLike,
    timeout_bars: ArrayLike,
    spread_pips: float,
    max_steps: int,
    confidence: float = 0.95,
    min_days: int = 6,
    min_trades: int = MIN_TRADES,
) -> ExitChoice:
    """Choose ``param`` within ``max_steps`` grid steps of ``current`` (split-half, per day).

    The other two exit parameters stay as given (``sl_pips``, ``tp_pips``, ``timeout_bars``:
    scalars or per trade; the given value of ``param`` itself is ignored). Ties between values
    go to fewer steps, then to the smaller value. Codes as :func:`entry.choose_threshold`.

    Raises:
        ValueError: unknown ``param``, a bad grid, arrays of different lengths.
    """
    if param not in EXIT_PARAMS:
        raise ValueError(f"param must be one of {EXIT_PARAMS}, got {param!r}")
    values = check_grid(grid)
    if param == "timeout_bars" and not bool(np.all((values == np.round(values)) & (values >= 0))):
        raise ValueError(f"timeout_bars grid must hold whole numbers >= 0, got {values.tolist()}")
    e, d = np.asarray(entry_bar, np.int64), np.asarray(day, np.int64)
    if e.ndim != 1 or e.shape != d.shape or e.shape != np.shape(side):
        raise ValueError(f"entry_bar, side and day must be 1-D of one length, got {e.shape}")
    base = {"sl_pips": sl_pips, "tp_pips": tp_pips, "timeout_bars": timeout_bars}
    sims = np.stack(
        [
            resimulate_exits(candles, e, side, **{**base, param: float(v)}, spread_pips=spread_pips)
            for v in values
        ]
    )  # (grid, trades)
    usable = np.all(np.isfinite(sims), axis=0)
    sims, d = sims[:, usable], d[usable]
    days, day_pos = np.unique(d, return_inverse=True)
    counts = _Counts(param, int(d.size), int(usable.size - d.size), int(days.size))
    cur = grid_index(values, current)
    if cur is None:
        detail = f"current {param} {current!r} is not on the grid {values.tolist()}"
        return _no_evidence(current, CF_CURRENT_OFF_GRID, detail, counts)
    if d.size < min_trades:
        detail = f"{d.size} re-simulated trades < {min_trades}"
        return _no_evidence(current, CF_INSUFFICIENT, detail, counts)
    res = split_half_choice(
        sims - sims[cur],
        day_pos.astype(np.int64),
        int(days.size),
        current=cur,
        max_steps=max_steps,
        strictness=-values,
        confidence=confidence,
        min_days=min_days,
        grid=values,
    )
    conf = res.confirm_mask
    return ExitChoice(
        param=param,
        n_trades=counts.n_trades,
        n_excluded=counts.n_excluded,
        n_days=counts.n_days,
        value=float(values[res.candidate]) if res.moved else current,
        code=res.code,
        detail=f"{param}, {d.size} trades ({counts.n_excluded} excluded): {res.detail}",
        candidate=float(values[res.candidate]),
        best_unconstrained=float(values[res.best_unconstrained]),
        confirm_days=res.confirm_days,
        mean_diff_per_day=res.mean_diff_per_day,
        low=res.low,
        high=res.high,
        mean_pips_current=_mean(sims[cur, conf]),
        mean_pips_candidate=_mean(sims[res.candidate, conf]),
    )


def _mean(x: NDArray[np.float64]) -> float:
    return float(x.mean()) if x.size else math.nan


@dataclass(frozen=True, slots=True)
class _Counts:
    param: str
    n_trades: int
    n_excluded: int
    n_days: int


def _no_evidence(current: float, code: str, detail: str, c: _Counts) -> ExitChoice:
    return ExitChoice(
        param=c.param,
        n_trades=c.n_trades,
        n_excluded=c.n_excluded,
        n_days=c.n_days,
        value=current,
        code=code,
        detail=detail,
        candidate=current,
        best_unconstrained=current,
        confirm_days=c.n_days // 2,
        mean_diff_per_day=math.nan,
        low=math.nan,
        high=math.nan,
        mean_pips_current=math.nan,
        mean_pips_candidate=math.nan,
    )
